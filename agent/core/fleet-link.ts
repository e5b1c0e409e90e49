/**
 * What ties an agent to its registry, on any platform: pushed commands (switch → pinned subnet,
 * budget → new budget, unpin) run on the agent, and its swaps and latency windows become telemetry.
 * The transport (Node: agent/registry-client.ts over `ws`; browser: web/registry-link.ts) delivers them.
 */
import type { AgentFrame, RegistryFrame, TelemetryEvent } from '../../registry/protocol.js';
import type { CoreLogger } from './adapters.js';
import { validateUserBudget, type AgentHandle } from './types.js';

export type CommandFrame = Extract<RegistryFrame, { t: 'command' }>;
export interface CommandOutcome {
  ok: boolean;
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}
export type SendTelemetry = (kind: TelemetryEvent['kind'], data: Record<string, unknown>) => unknown;

/** Runs one pushed command on the agent; the outcome is what the registry records. */
export function commandRunner(agent: AgentHandle, telemetry: SendTelemetry, log: CoreLogger): (c: CommandFrame) => Promise<CommandOutcome> {
  return async (c) => {
    log.info({ command: c.id, type: c.type }, 'command');
    const record = c.type === 'switch' ? await agent.switchTo(c.payload.subnet, { pin: true }) : c.type === 'budget' ? await agent.setBudget(validateUserBudget(c.payload.budget)) : await agent.unpin();
    if (c.type === 'budget') telemetry('budget', { budget: c.payload.budget as Record<string, unknown> });
    const s = agent.status();
    // a budget is accepted even when the swap it led to failed or it cannot be met now: budgetState says so
    const ok = c.type === 'budget' || record.outcome !== 'failed';
    const result = { outcome: record.outcome, subnetId: s.subnet?.id ?? null, swap: record.seq, ...(c.type === 'budget' ? { budgetState: s.budgetState } : {}) };
    return ok ? { ok, result } : { ok, result, error: record.error ?? { code: 'ERR_SWAP', message: `swap ${record.outcome}` } };
  };
}

/** Streams the agent's swaps and monitor windows as telemetry; returns the function that stops it. */
export function streamTelemetry(agent: AgentHandle, telemetry: SendTelemetry): () => void {
  const offSwap = agent.on('swap', (r) => {
    const cfg = r.outcome === 'swapped' ? agent.status().subnet : null;
    telemetry('swap', { ...r, ...(cfg && cfg.id === r.to ? { subnet: cfg.config, subnetId: cfg.id } : {}) } as unknown as Record<string, unknown>);
  });
  const offTelemetry = agent.on('telemetry', (t) => {
    telemetry('latency', { ...t.window, decision: t.decision, effective: t.effective } as unknown as Record<string, unknown>);
  });
  return () => {
    offSwap();
    offTelemetry();
  };
}

/** The `hello` frame: what the agent serves now. */
export function helloFrame(agent: AgentHandle, name = 'nestswap/0.1.0'): Extract<AgentFrame, { t: 'hello' }> {
  const s = agent.status();
  return { t: 'hello', agent: name, subnet: s.subnet?.config ?? null, subnetId: s.subnet?.id ?? null, budget: s.budget, packageVersion: s.packageVersion };
}
