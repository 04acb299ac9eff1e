/** One document of a twin: its state, a version bumped per change, and when each top-level key last changed. */
export interface TwinDoc {
  state: Record<string, unknown>;
  version: number;
  /** Per top-level key of `state`: when it last changed (ms since epoch). */
  updatedAt: Record<string, number>;
}

/** A device's twin as a store keeps it. */
export interface StoredTwin {
  deviceId: string;
  desired: TwinDoc;
  reported: TwinDoc;
}

/**
 * How soon a change must be on disk. `now`: durable (fsync'd) before `put` returns — an operator's desired
 * change, answered with 200 only after this. `soon`: handed to the operating system before `put` returns (a
 * crash of the process loses nothing) and fsync'd within the store's flush delay (a power loss may lose the
 * last moments of device reports, which devices send again when they reconnect).
 */
export type Durability = 'now' | 'soon';

/**
 * Where twins are kept. The service holds every twin in memory and hands each change to the store before it
 * answers. The file store is the one-machine implementation; a Redis or PostgreSQL store (one record per
 * device) implements the same calls.
 */
export interface TwinStore {
  /** Reads every twin (none on first use). Called once, before any other call. */
  load(): StoredTwin[];
  /** Records a twin's new content (replacing the old). */
  put(twin: StoredTwin, durability: Durability): void;
  /** Forgets a device's twin. Durable before returning. */
  remove(deviceId: string): void;
  /** Makes every change so far durable. */
  flush(): void;
  /** Flushes and releases the store (e.g. its lock); the store is unusable afterwards. */
  close(): void;
}

/** A store in memory only: for a twin that need not survive a restart, and for tests of the service. */
export class MemoryTwinStore implements TwinStore {
  readonly twins = new Map<string, StoredTwin>();
  load(): StoredTwin[] {
    return [...this.twins.values()];
  }
  put(twin: StoredTwin): void {
    this.twins.set(twin.deviceId, twin);
  }
  remove(deviceId: string): void {
    this.twins.delete(deviceId);
  }
  flush(): void {
    // nothing to flush: memory is where it lives
  }
  close(): void {
    // nothing to release
  }
}
