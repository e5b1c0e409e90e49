/**
 * Where the TUF repository keeps its metadata: every version of every role's signed JSON, exactly
 * as served. A small interface; `SettingsTufStore` implements it over the registry store's
 * key/value settings (`tuf/<role>/<version>`, written once), so every store engine (SQLite,
 * PostgreSQL) holds TUF metadata without a schema of its own, and replicas agree on each version.
 */
import type { RegistryStore } from '../store.js';

export type TufRole = 'root' | 'targets' | 'snapshot' | 'timestamp';

export interface TufStore {
  /** the signed JSON of `role` at `version` */
  get(role: TufRole, version: number): Promise<string | undefined>;
  /** the highest version of `role` */
  latest(role: TufRole): Promise<{ version: number; json: string } | undefined>;
  /** stores a new version; false when that version exists already (someone else was first) */
  put(role: TufRole, version: number, json: string): Promise<boolean>;
}

export class SettingsTufStore implements TufStore {
  constructor(private readonly store: Pick<RegistryStore, 'setting' | 'setSetting' | 'settingOnce'>) {}

  get(role: TufRole, version: number): Promise<string | undefined> {
    return this.store.setting(`tuf/${role}/${version}`);
  }

  async latest(role: TufRole): Promise<{ version: number; json: string } | undefined> {
    // the pointer is a hint (another replica may be ahead): probe upwards from it
    let v = Number(await this.store.setting(`tuf/${role}/latest`)) || 0;
    let json = v > 0 ? await this.get(role, v) : undefined;
    for (;;) {
      const next = await this.get(role, v + 1);
      if (next === undefined) break;
      v++;
      json = next;
    }
    return json === undefined ? undefined : { version: v, json };
  }

  async put(role: TufRole, version: number, json: string): Promise<boolean> {
    if ((await this.store.settingOnce(`tuf/${role}/${version}`, json)) !== json) return false;
    await this.store.setSetting(`tuf/${role}/latest`, String(version));
    return true;
  }
}
