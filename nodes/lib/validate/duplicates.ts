import { createHash } from 'node:crypto';

/** Keys longer than this are stored as a digest so that the window's memory stays bounded. */
const MAX_PLAIN_KEY = 128;

interface DeviceWindow {
  keys: Set<string>;
  order: string[];
  next: number;
}

/**
 * Recent reading keys per device, to drop QoS 1 redeliveries and device retries. Bounded twice: at most
 * `perDevice` keys per device (oldest forgotten first) and at most `maxDevices` devices (least recently seen
 * forgotten first), so memory is at most perDevice x maxDevices short strings whatever devices send.
 * In memory only: after a restart a redelivery is accepted again (InfluxDB then overwrites the same point).
 */
export class DuplicateWindow {
  private readonly devices = new Map<string, DeviceWindow>();

  constructor(
    readonly perDevice: number,
    readonly maxDevices: number,
  ) {}

  /** True when `key` was seen for `device` recently; otherwise remembers it and returns false. */
  seen(device: string, key: string): boolean {
    const k = key.length > MAX_PLAIN_KEY ? createHash('sha256').update(key).digest('base64') : key;
    let w = this.devices.get(device);
    if (w) {
      if (w.keys.has(k)) return true;
      // Re-insert to mark the device as recently seen (Map keeps insertion order).
      this.devices.delete(device);
      this.devices.set(device, w);
    } else {
      w = { keys: new Set(), order: [], next: 0 };
      this.devices.set(device, w);
      if (this.devices.size > this.maxDevices) {
        this.devices.delete(this.devices.keys().next().value!);
      }
    }
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
