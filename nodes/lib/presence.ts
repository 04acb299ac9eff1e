/**
 * Online/offline and last-seen per device for devices that do not hold a broker session (HTTP ingest,
 * external brokers) and for those that do. A device with a live session is online until it disconnects;
 * any other device is online while it has been seen within `heartbeatTimeoutMs`.
 */
export interface PresenceState {
  online: boolean;
  lastSeen: number;
  /** True while the device holds a broker session. */
  connected: boolean;
}

export type PresenceReason = 'seen' | 'connected' | 'disconnected' | 'heartbeat timeout';

export interface PresenceChange {
  deviceId: string;
  online: boolean;
  at: number;
  reason: PresenceReason;
}

export class PresenceTracker {
  private readonly devices = new Map<string, PresenceState>();
  /**
   * Online devices without a session, in last-seen order (`seen` re-inserts at the end): a sweep walks only
   * the devices that have timed out, O(expired) rather than O(devices).
   */
  private readonly watched = new Map<string, PresenceState>();
  private onlineCount = 0;

  constructor(
    private readonly heartbeatTimeoutMs: number,
    private readonly maxDevices = 1_000_000,
  ) {}

  get size(): number {
    return this.devices.size;
  }

  /** Devices online now. */
  get online(): number {
    return this.onlineCount;
  }

  get(deviceId: string): PresenceState | undefined {
    return this.devices.get(deviceId);
  }

  /** A message from the device at `at`; returns the change when it comes online. */
  seen(deviceId: string, at: number): PresenceChange | undefined {
    let state = this.devices.get(deviceId);
    if (!state) {
      this.evictIfFull();
      state = { online: false, lastSeen: at, connected: false };
      this.devices.set(deviceId, state);
    } else if (at < state.lastSeen) {
      return undefined; // a late (back-filled) message says nothing about now
    }
    state.lastSeen = at;
    if (!state.connected) {
      this.watched.delete(deviceId);
      this.watched.set(deviceId, state);
    }
    if (state.online) return undefined;
    state.online = true;
    this.onlineCount++;
    return { deviceId, online: true, at, reason: 'seen' };
  }

  /**
   * Every device a message speaks for, seen at `at`: `msg.device` is one device (`{ id }`), or one per
   * publication in a micro-batch (an array, often naming a device many times). Returns the devices that
   * came online; anything without a string id is not a device and is skipped.
   */
  seenIn(device: unknown, at: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    const one = (ref: unknown): void => {
      const id = (ref as { id?: unknown } | null | undefined)?.id;
      if (typeof id !== 'string') return;
      const change = this.seen(id, at);
      if (change) changes.push(change);
    };
    if (Array.isArray(device)) for (const ref of device) one(ref);
    else one(device);
    return changes;
  }

  connected(deviceId: string, at: number): PresenceChange | undefined {
    const change = this.seen(deviceId, at);
    const state = this.devices.get(deviceId);
    if (state) state.connected = true;
    this.watched.delete(deviceId);
    return change && { ...change, reason: 'connected' };
  }

  disconnected(deviceId: string, at: number): PresenceChange | undefined {
    const state = this.devices.get(deviceId);
    if (!state?.online) return undefined;
    state.connected = false;
    state.online = false;
    this.onlineCount--;
    this.watched.delete(deviceId);
    return { deviceId, online: false, at, reason: 'disconnected' };
  }

  /** Devices without a session not seen for longer than the heartbeat timeout go offline. */
  sweep(now: number): PresenceChange[] {
    const changes: PresenceChange[] = [];
    const cutoff = now - this.heartbeatTimeoutMs;
    for (const [deviceId, state] of this.watched) {
      if (state.lastSeen > cutoff) break;
      this.watched.delete(deviceId);
      state.online = false;
      this.onlineCount--;
      changes.push({ deviceId, online: false, at: now, reason: 'heartbeat timeout' });
    }
    return changes;
  }

  snapshot(): Record<string, PresenceState> {
    return Object.fromEntries(this.devices);
  }

  /** Restores last-seen times after a restart; nobody is online until seen again. */
  restore(saved: Record<string, { lastSeen?: unknown }>): void {
    for (const [deviceId, entry] of Object.entries(saved)) {
      if (typeof entry.lastSeen !== 'number' || this.devices.has(deviceId)) continue;
      this.evictIfFull();
      this.devices.set(deviceId, { online: false, lastSeen: entry.lastSeen, connected: false });
    }
  }

  /** Bounded memory: an offline device is forgotten first, else the one seen longest ago. */
  private evictIfFull(): void {
    if (this.devices.size < this.maxDevices) return;
    for (const [deviceId, state] of this.devices) {
      if (!state.online) {
        this.devices.delete(deviceId);
        return;
      }
    }
    const oldest = this.watched.keys().next();
    if (!oldest.done) {
      this.watched.delete(oldest.value);
      this.devices.delete(oldest.value);
      this.onlineCount--; // watched devices are online
    }
  }
}
