/**
 * The fleet dashboard (/dashboard): admin sign-in (token in sessionStorage, sent as a Bearer header,
 * never in a URL), the device table, and a device page: observed latency and slowdown over time from
 * telemetry, the Pareto front of its profile with the serving subnet and the budget marked, the swap
 * history, and controls (set a budget, switch to a point of the front, unpin) sent as registry commands.
 * Browser and Node devices come from the same registry API and look the same.
 */
import uPlot from 'uplot';
import { api, type DeviceInfo, type FrontDoc, type TelemetryRow } from './api.js';
import { el, fmtBudget, fmtMs, text } from './dom.js';

const TOKEN_KEY = 'nestswap:admin-token';
const $ = (id: string) => document.getElementById(id)!;
let timer: ReturnType<typeof setInterval> | undefined;
const plots: uPlot[] = [];

function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

function showError(where: string, err: unknown): void {
  $(where).textContent = err instanceof Error ? err.message : String(err);
}

function deviceEp(d: DeviceInfo): string {
  return (d.facts?.ep as string | undefined) ?? d.profile?.ep ?? '—';
}

function renderFleet(devices: DeviceInfo[]): void {
  const rows = devices.map((d) =>
    el('tr', { class: 'device', 'data-device': d.id, onclick: () => (location.hash = `#/device/${encodeURIComponent(d.id)}`) }, [
      el('td', {}, [el('a', { href: `#/device/${encodeURIComponent(d.id)}` }, [d.name]), el('br'), el('code', {}, [d.id])]),
      el('td', { class: d.online ? 'online' : 'offline', 'data-col': 'state' }, [d.online ? 'online' : 'offline']),
      el('td', { 'data-col': 'class' }, [d.deviceClass ?? '—']),
      el('td', { 'data-col': 'ep' }, [deviceEp(d)]),
      el('td', { 'data-col': 'package' }, [d.supernet ? `${d.supernet}@${d.packageVersion ?? '?'}` : '—']),
      el('td', { 'data-col': 'subnet' }, [el('code', {}, [d.subnetId ?? '—'])]),
      el('td', { 'data-col': 'budget' }, [fmtBudget(d.budget)]),
      el('td', { 'data-col': 'last-seen' }, [d.lastSeen ? new Date(d.lastSeen).toLocaleTimeString() : '—']),
      el('td', { 'data-col': 'profile' }, [d.profile ? `${d.profile.ep ?? '?'} · ${d.profile.threads ?? '?'} thr · ${d.profile.sha256.slice(0, 8)}` : 'none']),
    ]),
  );
  const head = ['device', 'state', 'class', 'EP', 'package', 'subnet', 'budget', 'last seen', 'profile'].map((h) => el('th', {}, [h]));
  $('fleet').replaceChildren(el('h2', {}, [`Devices (${devices.length})`]), el('table', { id: 'devices' }, [el('thead', {}, [el('tr', {}, head)]), el('tbody', {}, rows)]));
}

function latencyPlot(rows: TelemetryRow[]): HTMLElement {
  const wins = rows.filter((r) => r.kind === 'latency' && typeof r.data.p50Ms === 'number').sort((a, b) => a.at - b.at);
  const box = el('div', { id: 'latency-plot', 'data-points': String(wins.length) });
  const data: uPlot.AlignedData = [
    wins.map((w) => w.at / 1000),
    wins.map((w) => w.data.p50Ms as number),
    wins.map((w) => (w.data.predictedMs as number | null) ?? null),
    wins.map((w) => (w.data.slowdown as number | null) ?? null),
  ];
  const opts: uPlot.Options = {
    title: 'Observed latency and slowdown',
    width: 560,
    height: 260,
    scales: { ms: {}, x: { time: true }, s: {} },
    series: [{}, { label: 'p50 ms', stroke: '#1a73e8', scale: 'ms' }, { label: 'predicted ms', stroke: '#999', dash: [4, 4], scale: 'ms' }, { label: 'slowdown', stroke: '#d93025', scale: 's' }],
    axes: [{}, { scale: 'ms', label: 'ms' }, { scale: 's', side: 1, label: 'slowdown', grid: { show: false } }],
  };
  plots.push(new uPlot(opts, data, box));
  return box;
}

function frontPlot(front: FrontDoc): HTMLElement {
  const pts = front.points.filter((p) => p.predicted.latencyMs !== null);
  const box = el('div', { id: 'front-plot', 'data-points': String(pts.length), 'data-current': front.subnetId ?? '' });
  const cur = pts.findIndex((p) => p.subnetId === front.subnetId);
  const budgetMs = (front.budget as { latencyMs?: number } | null)?.latencyMs;
  const xs = pts.map((p) => p.predicted.latencyMs as number);
  const data: uPlot.AlignedData = [xs, pts.map((p) => p.predicted.accuracy), pts.map((p, i) => (i === cur ? p.predicted.accuracy : null))];
  const opts: uPlot.Options = {
    title: 'Pareto front (predicted accuracy vs latency)',
    width: 560,
    height: 260,
    // the x range takes in the budget line too
    scales: { x: { time: false, range: (_u, lo, hi) => [Math.min(lo, budgetMs ?? lo) * 0.95, Math.max(hi, budgetMs ?? hi) * 1.05] } },
    series: [
      { label: 'latency ms' },
      { label: 'front', stroke: '#1a73e8', points: { show: true, size: 6 } },
      { label: 'serving', stroke: '#d93025', width: 0, points: { show: true, size: 12, fill: '#d93025' } },
    ],
    axes: [{ label: 'predicted latency (ms)' }, { label: 'predicted accuracy' }],
    hooks: {
      draw: [
        (u) => {
          if (budgetMs === undefined) return;
          const x = u.valToPos(budgetMs, 'x', true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = '#137333';
          ctx.setLineDash([6, 4]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
  plots.push(new uPlot(opts, data, box));
  if (budgetMs !== undefined) box.setAttribute('data-budget-ms', String(budgetMs));
  return box;
}

async function command(id: string, body: Record<string, unknown>): Promise<void> {
  $('command-status').textContent = `sending ${String(body.type)}…`;
  try {
    const c = await api<{ status: string; error?: { message: string } | null }>(token()!, `/v1/devices/${encodeURIComponent(id)}/commands`, { method: 'POST', body: { ...body, waitMs: 30_000 } });
    $('command-status').textContent = `${String(body.type)}: ${c.status}${c.error ? ` (${c.error.message})` : ''}`;
  } catch (err) {
    showError('command-status', err);
  }
  void refresh();
}

function frontTable(id: string, front: FrontDoc): HTMLElement {
  const rows = front.points.map((p) =>
    el('tr', { class: p.subnetId === front.subnetId ? 'current' : '', 'data-subnet': p.subnetId }, [
      el('td', {}, [fmtMs(p.predicted.latencyMs)]),
      el('td', {}, [p.predicted.accuracy.toFixed(4)]),
      el('td', {}, [el('code', {}, [p.subnetId])]),
      el('td', {}, [p.subnetId === front.subnetId ? 'serving' : el('button', { class: 'switch', onclick: () => void command(id, { type: 'switch', subnet: p.subnet }) }, ['switch'])]),
    ]),
  );
  return el('table', { id: 'front' }, [el('thead', {}, [el('tr', {}, ['latency', 'accuracy', 'subnet', ''].map((h) => el('th', {}, [h])))]), el('tbody', {}, rows)]);
}

function swapTable(rows: TelemetryRow[]): HTMLElement {
  const swaps = rows.filter((r) => r.kind === 'swap').sort((a, b) => b.at - a.at);
  return el(
    'table',
    { id: 'swaps' },
    [
      el('thead', {}, [el('tr', {}, ['time', 'outcome', 'from → to', 'reason', 'decision → serving'].map((h) => el('th', {}, [h])))]),
      el(
        'tbody',
        {},
        swaps.map((s) => {
          const d = s.data as { outcome?: string; from?: string | null; to?: string; reason?: string; timings?: { totalMs?: number } | null };
          return el('tr', { 'data-outcome': d.outcome ?? '', 'data-to': d.to ?? '' }, [
            el('td', {}, [new Date(s.at).toLocaleTimeString()]),
            el('td', {}, [d.outcome ?? '?']),
            el('td', {}, [el('code', {}, [`${d.from ?? '—'} → ${d.to ?? '?'}`])]),
            el('td', {}, [d.reason ?? '']),
            el('td', {}, [fmtMs(d.timings?.totalMs ?? null)]),
          ]);
        }),
      ),
    ],
  );
}

function controls(id: string, d: DeviceInfo): HTMLElement {
  const input = el('input', { id: 'budget-ms', type: 'number', step: 'any', min: '0', placeholder: 'latency ms', value: String((d.budget as { latencyMs?: number } | null)?.latencyMs ?? '') }) as HTMLInputElement;
  const form = el('form', { id: 'budget-form' }, [el('label', {}, ['Latency budget ', input, ' ms ']), el('button', { type: 'submit' }, ['Set budget']), ' ', el('button', { type: 'button', id: 'unpin', onclick: () => void command(id, { type: 'unpin' }) }, ['Unpin'])]);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = Number(input.value);
    if (!Number.isFinite(v) || v <= 0) return void ($('command-status').textContent = 'a budget must be a number > 0');
    void command(id, { type: 'budget', budget: { latencyMs: v } });
  });
  return el('div', {}, [form, el('p', { id: 'command-status', class: 'muted' })]);
}

async function renderDevice(id: string): Promise<void> {
  const [d, tel, front] = await Promise.all([
    api<DeviceInfo>(token()!, `/v1/devices/${encodeURIComponent(id)}`),
    api<{ events: TelemetryRow[] }>(token()!, `/v1/devices/${encodeURIComponent(id)}/telemetry?limit=500`),
    api<FrontDoc>(token()!, `/v1/devices/${encodeURIComponent(id)}/front`).catch((err: Error) => err),
  ]);
  for (const p of plots.splice(0)) p.destroy();
  const status = $('command-status')?.textContent ?? '';
  const page = el('div', { id: 'device-page', 'data-device': d.id }, [
    el('h2', {}, [`${d.name} `, el('span', { class: d.online ? 'online' : 'offline' }, [d.online ? 'online' : 'offline'])]),
    el('p', {}, [
      text(`class ${d.deviceClass ?? '—'} · EP ${deviceEp(d)} · budget ${fmtBudget(d.budget)} · serving `),
      el('code', { id: 'serving' }, [d.subnetId ?? '—']),
    ]),
    controls(id, d),
    el('div', { class: 'row' }, [latencyPlot(tel.events), front instanceof Error ? el('p', { id: 'front-plot', class: 'muted' }, [`No Pareto front: ${front.message}`]) : frontPlot(front)]),
    ...(front instanceof Error ? [] : [el('h2', {}, ['Front']), frontTable(id, front)]),
    el('h2', {}, ['Swap history']),
    swapTable(tel.events),
  ]);
  $('device').replaceChildren(page);
  if (status) $('command-status').textContent = status;
}

async function refresh(): Promise<void> {
  if (!token()) return;
  try {
    const m = /^#\/device\/(.+)$/.exec(location.hash);
    if (m) {
      $('fleet').replaceChildren();
      await renderDevice(decodeURIComponent(m[1]!));
    } else {
      $('device').replaceChildren();
      renderFleet((await api<{ devices: DeviceInfo[] }>(token()!, '/v1/devices')).devices);
    }
    $('app-error').textContent = '';
  } catch (err) {
    if ((err as { status?: number }).status === 401) return signOut('The admin token was refused.');
    showError('app-error', err);
  }
}

function signOut(why = ''): void {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  $('app').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = why;
}

function signedIn(): void {
  $('signin').hidden = true;
  $('app').hidden = false;
  void refresh();
  timer = setInterval(() => {
    // a device page is redrawn only while no control has focus, so typing a budget is not interrupted
    if (!(document.activeElement instanceof HTMLInputElement)) void refresh();
  }, 2000);
}

$('signin-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = ($('token') as HTMLInputElement).value.trim();
  api(t, '/v1/devices?limit=1').then(
    () => {
      sessionStorage.setItem(TOKEN_KEY, t);
      ($('token') as HTMLInputElement).value = '';
      signedIn();
    },
    (err: unknown) => showError('signin-error', err),
  );
});
$('signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => void refresh());
if (token()) signedIn();
else signOut();
