import { createHash } from 'node:crypto';

/** Keys longer than this are stored as a digest so that the window's memory stays bounded. */
const MAX_PLAIN_KEY = 128;

interface DeviceWindow {
  keys: Set<string>;
  order: string[];
  next: number;
  /** When the device was last seen, in calls to `seen` (cheaper than reordering a Map on every call). */
  lastSeen: number;
}

/**
 * Recent reading keys per device, to drop QoS 1 redeliveries and device retries. Bounded twice: at most
 * `perDevice` keys per device (oldest forgotten first) and at most `maxDevices` devices (when a new device
 * would exceed it, the least recently seen tenth are forgotten), so memory is at most perDevice x maxDevices
 * short strings whatever devices send. In memory only: after a restart a redelivery is accepted again
 * (InfluxDB then overwrites the same point).
 */
export class DuplicateWindow {
  private readonly devices = new Map<string, DeviceWindow>();
  private tick = 0;

  constructor(
    readonly perDevice: number,
    readonly maxDevices: number,
  ) {}

  /** True when `key` was seen for `device` recently; otherwise remembers it and returns false. */
  seen(device: string, key: string): boolean {
    const k = key.length > MAX_PLAIN_KEY ? createHash('sha256').update(key).digest('base64') : key;
    let w = this.devices.get(device);
    if (!w) {
      if (this.devices.size >= this.maxDevices) this.forgetLeastRecent();
      w = { keys: new Set(), order: [], next: 0, lastSeen: 0 };
      this.devices.set(device, w);
    }
    w.lastSeen = ++this.tick;
    if (w.keys.has(k)) return true;
    if (w.order.length < this.perDevice) {
      w.order.push(k);
    } else {
      w.keys.delete(w.order[w.next]);
      w.order[w.next] = k;
      w.next = (w.next + 1) % this.perDevice;
    }
    w.keys.add(k);
    return false;
  }

  /** Devices currently tracked (for status and tests). */
  get size(): number {
    return this.devices.size;
  }

  /** Amortised: one sort per maxDevices/10 new devices, not a reorder on every reading. */
  private forgetLeastRecent(): void {
    const byAge = [...this.devices].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
    const drop = Math.max(1, Math.ceil(this.maxDevices / 10));
    for (let i = 0; i < drop && i < byAge.length; i++) this.devices.delete(byAge[i][0]);
  }
}

/**
 * What makes two readings of one device the same: the device's message id when it sends one; otherwise its
 * timestamp plus the values (two messages with one `ts` but different fields are both real, and InfluxDB
 * merges them into one point). Without either there is nothing to recognise a redelivery by.
 */
export function duplicateKey(
  id: string | undefined,
  ts: number | undefined,
  fields: Record<string, unknown>,
): string | undefined {
  if (id !== undefined) return `i:${id}`;
  if (ts !== undefined) return `t:${ts}:${JSON.stringify(fields)}`;
  return undefined;
}
