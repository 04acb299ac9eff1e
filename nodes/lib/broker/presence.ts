/** Who is connected now (the live client of each device) and when each device was last heard of. */
import type { Client } from 'aedes';

export interface Presence {
  online: boolean;
  /** Last CONNECT, PUBLISH or PINGREQ (ms since epoch). */
  lastSeen: number;
  connectedAt?: number;
  ip?: string;
}

export class PresenceBook {
  /** The live client of each connected device (a newer session replaces an older one). */
  private readonly live = new Map<string, Client>();
  private readonly presence = new Map<string, Presence>();

  /** Devices online now. */
  get online(): number {
    return this.live.size;
  }

  client(deviceId: string): Client | undefined {
    return this.live.get(deviceId);
  }

  get(deviceId: string): Presence {
    return this.presence.get(deviceId) ?? { online: false, lastSeen: 0 };
  }

  connected(deviceId: string, client: Client, ip: string, now: number): void {
    this.live.set(deviceId, client);
    this.presence.set(deviceId, { online: true, lastSeen: now, connectedAt: now, ip });
  }

  /** False when `client` is not the device's live one (refused, or replaced by a newer session). */
  disconnected(deviceId: string, client: Client, ip: string, now: number): boolean {
    if (this.live.get(deviceId) !== client) return false;
    this.live.delete(deviceId);
    const p = this.presence.get(deviceId);
    this.presence.set(deviceId, { online: false, lastSeen: p ? Math.max(p.lastSeen, now) : now, ip });
    return true;
  }

  /** The device was heard of (a PUBLISH, a PINGREQ). */
  seen(deviceId: string, now: number): void {
    const p = this.presence.get(deviceId);
    if (p) p.lastSeen = now;
  }

  /** The device left the registry. */
  forget(deviceId: string): void {
    this.presence.delete(deviceId);
  }

  clear(): void {
    this.live.clear();
  }
}
