import { createHash } from 'node:crypto';

/** Keys (and value texts) longer than this are stored as a digest so that the window's memory stays bounded. */
const MAX_PLAIN_KEY = 128;
/** Readings with at most this many fields, all scalars and strings up to this length, are kept as a copy. */
const SMALL_FIELDS = 16;
const SMALL_STRING = 64;

/**
 * What is kept of an accepted reading to recognise its repetition: a shallow copy of small flat fields
 * (cheap, and immune to downstream edits of `msg.payload`), otherwise the values' JSON text or its digest.
 */
type Snapshot = Record<string, unknown> | string;

interface DeviceWindow {
  /**
   * Device message ids (strings, `true`), and per `ts` (numbers) the snapshot of the reading accepted with it,
   * or a list of them (oldest first) when several readings share the `ts`.
   */
  keys: Map<string | number, Snapshot | Snapshot[] | true>;
  order: (string | number)[];
  next: number;
  /** When the device was last seen, in calls (cheaper than reordering a Map on every call). */
  lastSeen: number;
}

/**
 * Recent readings per device, to drop QoS 1 redeliveries and device retries. A reading is recognised by the
 * device's message id, or by its `ts` plus identical values (two readings with one `ts` but different fields
 * are both real, and InfluxDB merges them into one point). Keyed by the `ts` number, values are compared only
 * when two readings share a `ts`: no text is built per reading.
 *
 * Bounded twice: at most `perDevice` entries per device (oldest forgotten first) and at most `maxDevices`
 * devices (when a new device would exceed it, the least recently seen tenth are forgotten), so memory is at
 * most perDevice x maxDevices small entries whatever devices send. In memory only: after a restart a
 * redelivery is accepted again (InfluxDB then overwrites the same point).
 */
export class DuplicateWindow {
  private readonly devices = new Map<string, DeviceWindow>();
  private tick = 0;

  constructor(
    readonly perDevice: number,
    readonly maxDevices: number,
  ) {}

  /** True when `key` (a device message id) was seen for `device` recently; otherwise remembers it. */
  seen(device: string, key: string): boolean {
    const k = key.length > MAX_PLAIN_KEY ? digest(key) : key;
    const w = this.window(device);
    if (w.keys.has(k)) return true;
    this.forgetOldest(w, k);
    w.keys.set(k, true);
    return false;
  }

  /** True when a reading with this `ts` and identical fields was seen for `device`; otherwise remembers it. */
  seenReading(device: string, ts: number, fields: Record<string, unknown>): boolean {
    const w = this.window(device);
    const prior = w.keys.get(ts);
    if (Array.isArray(prior)) {
      for (const snapshot of prior) if (sameReading(snapshot, fields)) return true;
    } else if (prior !== undefined && prior !== true && sameReading(prior, fields)) {
      return true;
    }
    this.forgetOldest(w, ts);
    const kept = w.keys.get(ts);
    const snapshot = snapshotOf(fields);
    if (kept === undefined || kept === true) w.keys.set(ts, snapshot);
    else if (Array.isArray(kept)) kept.push(snapshot);
    else w.keys.set(ts, [kept, snapshot]);
    return false;
  }

  /** Devices currently tracked (for status and tests). */
  get size(): number {
    return this.devices.size;
  }

  private window(device: string): DeviceWindow {
    let w = this.devices.get(device);
    if (!w) {
      if (this.devices.size >= this.maxDevices) this.forgetLeastRecent();
      w = { keys: new Map(), order: [], next: 0, lastSeen: 0 };
      this.devices.set(device, w);
    }
    w.lastSeen = ++this.tick;
    return w;
  }

  /** Makes room for `key` in the device's ring, forgetting its oldest entry when it is full. */
  private forgetOldest(w: DeviceWindow, key: string | number): void {
    if (w.order.length < this.perDevice) {
      w.order.push(key);
      return;
    }
    const old = w.order[w.next];
    const entry = w.keys.get(old);
    // Snapshots of one ts were added in ring order: the first is the oldest.
    if (Array.isArray(entry) && entry.length > 1) entry.shift();
    else w.keys.delete(old);
    w.order[w.next] = key;
    w.next = (w.next + 1) % this.perDevice;
  }

  /** Amortised: one sort per maxDevices/10 new devices, not a reorder on every reading. */
  private forgetLeastRecent(): void {
    const byAge = [...this.devices].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
    const drop = Math.max(1, Math.ceil(this.maxDevices / 10));
    for (let i = 0; i < drop && i < byAge.length; i++) this.devices.delete(byAge[i][0]);
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

function snapshotOf(fields: Record<string, unknown>): Snapshot {
  const keys = Object.keys(fields);
  if (keys.length <= SMALL_FIELDS) {
    const copy: Record<string, unknown> = {};
    let small = true;
    for (const key of keys) {
      const v = fields[key];
      if ((typeof v === 'object' && v !== null) || (typeof v === 'string' && v.length > SMALL_STRING)) {
        small = false;
        break;
      }
      copy[key] = v;
    }
    if (small) return copy;
  }
  return textOf(fields);
}

function textOf(fields: Record<string, unknown>): string {
  const text = JSON.stringify(fields);
  return text.length > MAX_PLAIN_KEY ? digest(text) : text;
}

/** Identical values: a copy compares field by field, a text (nested or large fields) as text. */
function sameReading(snapshot: Snapshot, fields: Record<string, unknown>): boolean {
  if (typeof snapshot === 'string') return textOf(fields) === snapshot;
  const keys = Object.keys(fields);
  if (keys.length !== Object.keys(snapshot).length) return false;
  for (const key of keys) {
    if (!Object.prototype.hasOwnProperty.call(snapshot, key) || snapshot[key] !== fields[key]) return false;
  }
  return true;
}
