/**
 * What the registry told this device to do, kept on disk so that an acknowledged command still holds
 * after a restart: the pinned subnet of a `switch` and the budget of a `budget` command
 * (`<data>/fleet/state.json`, written temp + fsync + rename before the command is acknowledged).
 * Applied at start over the command-line budget; `unpin` clears the pin, a new budget replaces the old.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeDurable } from '../runtime/node/durable.js';
import type { SubnetConfig } from '../runtime/space.js';
import { BudgetSchema, SubnetConfigSchema } from '../registry/protocol.js';
import type { UserBudget } from './policy.js';

const StateSchema = z
  .object({
    format: z.literal('nestswap.fleet-state/1'),
    budget: BudgetSchema.nullable(),
    pin: SubnetConfigSchema.nullable(),
    /** the command that set this state */
    command: z.string().max(200).nullable(),
  })
  .strict();

export interface FleetState {
  budget: UserBudget | null;
  pin: SubnetConfig | null;
  command: string | null;
}

const FILE = 'state.json';

/** The saved state, or the empty state when there is none; a damaged file is reported and ignored. */
export function loadFleetState(dir: string, onDamaged?: (why: string) => void): FleetState {
  const f = join(dir, FILE);
  if (!existsSync(f)) return { budget: null, pin: null, command: null };
  try {
    const r = StateSchema.safeParse(JSON.parse(readFileSync(f, 'utf8')));
    if (r.success) return { budget: r.data.budget as UserBudget | null, pin: r.data.pin as SubnetConfig | null, command: r.data.command };
    onDamaged?.(r.error.issues[0]?.message ?? 'invalid');
  } catch (err) {
    onDamaged?.((err as Error).message);
  }
  return { budget: null, pin: null, command: null };
}

export function saveFleetState(dir: string, s: FleetState): void {
  writeDurable(join(dir, FILE), JSON.stringify({ format: 'nestswap.fleet-state/1', ...s }), { crashPoint: 'state-write' });
}
