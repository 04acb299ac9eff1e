import { createHash } from 'node:crypto';

/** Ids and kept texts longer than this are stored as a digest so that the window's memory stays bounded. */
const MAX_KEPT_TEXT = 256;
/** Marks a kept digest; JSON text never starts with it. */
const DIGEST = '#';

interface DeviceWindow {
  /**
   * A ring of the device's last `perDevice` accepted readings: per slot the reading's `ts` (NaN for one
   * recognised by its id) and what was kept of it (the id, or the reading's JSON text or digest).
   */
  times: number[];
  kept: string[];
  /** Ring position to overwrite next once the ring is full. */
  next: number;
  /** The ids in the ring, for a lookup without a scan. */
  ids: Set<string>;
  /** The newest `ts` ever remembered: a reading with a later one cannot be a repetition (no scan). */
  newest: number;
  /** When the device was last seen, in calls (cheaper than reordering a Map on every call). */
  lastSeen: number;
}

/**
 * Recent readings per device, to drop QoS 1 redeliveries and device retries. A reading is recognised by the
 * device's message id, or by its `ts` plus identical values; a reading with a remembered `ts` but other values
 * is told apart (InfluxDB would merge the two into one point, so the validator refuses it too). Readings arrive mostly in time order, so a `ts`
 * newer than any remembered one settles it at once; otherwise the device's ring of `ts` numbers is scanned,
 * and values are compared only for a reading with an equal `ts`. What is kept of a reading is its JSON text —
 * usually the payload text itself, so remembering a reading copies nothing — or, when longer than
 * MAX_KEPT_TEXT, a digest of its values' JSON.
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
  ) {
    if (!(perDevice >= 1 && maxDevices >= 1)) {
      throw new RangeError(
        `a duplicate window needs at least one entry and one device (got ${perDevice}, ${maxDevices})`,
      );
    }
  }

  /** True when `id` (a device message id) was seen for `device` recently; otherwise remembers it. */
  seen(device: string, id: string): boolean {
    const key = id.length > MAX_KEPT_TEXT ? digest(id) : id;
    const w = this.window(device);
    if (w.ids.has(key)) return true;
    this.put(w, NaN, key);
    w.ids.add(key);
    return false;
  }

  /**
   * Whether `device` has a remembered reading with this `ts`: `identical` when its values equal those of
   * `reading` (its `ts` and `id` aside, a repetition), `different` when they do not (InfluxDB would merge the
   * two into one point), undefined when there is none. Looks only: `rememberReading` adds it once accepted.
   */
  hasReading(
    device: string,
    ts: number,
    reading: Record<string, unknown>,
  ): 'identical' | 'different' | undefined {
    const w = this.devices.get(device);
    if (w === undefined || ts > w.newest) return undefined;
    let mine: string | undefined;
    let found: 'different' | undefined;
    for (let i = 0; i < w.times.length; i++) {
      if (w.times[i] !== ts) continue;
      const kept = w.kept[i];
      if (kept.startsWith(DIGEST)) {
        mine ??= DIGEST + digest(valuesText(reading));
        if (kept === mine) return 'identical';
      } else if (sameValues(JSON.parse(kept) as Record<string, unknown>, reading)) {
        return 'identical';
      }
      found = 'different';
    }
    return found;
  }

  /** Remembers an accepted reading by its `ts` and what `keepOf` kept of it. */
  rememberReading(device: string, ts: number, kept: string): void {
    const w = this.window(device);
    this.put(w, ts, kept);
    if (ts > w.newest) w.newest = ts;
  }

  /** Devices currently tracked (for status and tests). */
  get size(): number {
    return this.devices.size;
  }

  private window(device: string): DeviceWindow {
    let w = this.devices.get(device);
    if (!w) {
      if (this.devices.size >= this.maxDevices) this.forgetLeastRecent();
      w = { times: [], kept: [], next: 0, ids: new Set(), newest: -Infinity, lastSeen: 0 };
      this.devices.set(device, w);
    }
    w.lastSeen = ++this.tick;
    return w;
  }

  /** Adds an entry to the device's ring, forgetting its oldest entry when the ring is full. */
  private put(w: DeviceWindow, ts: number, kept: string): void {
    if (w.times.length < this.perDevice) {
      w.times.push(ts);
      w.kept.push(kept);
      return;
    }
    if (Number.isNaN(w.times[w.next])) w.ids.delete(w.kept[w.next]);
    w.times[w.next] = ts;
    w.kept[w.next] = kept;
    w.next = (w.next + 1) % this.perDevice;
  }

  /** Amortised: one sort per maxDevices/10 new devices, not a reorder on every reading. */
  private forgetLeastRecent(): void {
    const byAge = [...this.devices].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
    const drop = Math.max(1, Math.ceil(this.maxDevices / 10));
    for (let i = 0; i < drop && i < byAge.length; i++) this.devices.delete(byAge[i][0]);
  }
}

/**
 * What the window keeps of a reading to recognise its repetition: its JSON text (`text` when the caller has
 * it, e.g. the payload the reading came in, else built), or a digest of its values when that is long. Taken
 * before coercion or defaults change the reading, as `hasReading` compares the values as they came.
 */
export function keepOf(reading: Record<string, unknown>, text?: string): string {
  const json = text ?? JSON.stringify(reading);
  return json.length > MAX_KEPT_TEXT ? DIGEST + digest(valuesText(reading)) : json;
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('base64');
}

/** The JSON text of a reading's values, `ts` and `id` left out. */
function valuesText(reading: Record<string, unknown>): string {
  return JSON.stringify(reading, function (this: unknown, key: string, value: unknown) {
    return this === reading && (key === 'ts' || key === 'id') ? undefined : value;
  });
}

/**
 * The same fields with the same values, `ts` and `id` aside (their order aside too); nested values are
 * compared as JSON text.
 */
function sameValues(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  let fieldsOfA = 0;
  for (const key of Object.keys(a)) {
    if (key === 'ts' || key === 'id') continue;
    fieldsOfA++;
    if (!Object.prototype.hasOwnProperty.call(b, key)) return false;
    const x = a[key];
    const y = b[key];
    if (x === y) continue;
    if (typeof x !== 'object' || x === null || typeof y !== 'object' || y === null) return false;
    if (JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  let fieldsOfB = 0;
  for (const key of Object.keys(b)) if (key !== 'ts' && key !== 'id') fieldsOfB++;
  return fieldsOfA === fieldsOfB;
}
