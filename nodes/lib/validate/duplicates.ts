import { createHash } from 'node:crypto';

/** Ids and kept texts longer than this are stored as a digest so that the window's memory stays bounded. */
const MAX_KEPT_TEXT = 256;
/** Marks a kept digest; JSON text never starts with it. */
const DIGEST = '#';

interface DeviceWindow {
  /**
   * A ring of the device's last `perDevice` accepted readings that carried a `ts` or an `id`: per slot the
   * time the reading was given (its `ts`, or the clock's time for one without), what was kept of its values
   * (its JSON text or digest), its id (or undefined) and the ack id it was accepted with (0 for none).
   */
  times: number[];
  kept: string[];
  ids: (string | undefined)[];
  acks: number[];
  /** Ring position to overwrite next once the ring is full. */
  next: number;
  /** Id → slot, for a lookup without a scan. */
  slotOfId: Map<string, number>;
  /** The latest time ever remembered: a reading with a later `ts` cannot be a repetition (no scan). */
  newest: number;
  /** When the device was last seen, in calls (cheaper than reordering a Map on every call). */
  lastSeen: number;
}

/** What the window knows of a reading: see `DuplicateWindow.lookup`. */
export type Repetition = 'new' | 'resent' | 'ts-taken' | 'id-taken';

/**
 * Recent readings per device, to tell a re-send from a new reading and from a clash. A reading is recognised
 * by the device's message id, or by its `ts`, plus identical values. A re-send (QoS 1 redelivery, a device's
 * retry) may only be dropped when its first copy is known to be durable — it may never have become so (spool
 * or disk full, ack timeout), and then only the re-send's own storage may acknowledge it. So the window keeps
 * the ack id each reading came with; the validator asks the ack ledger about it and otherwise passes the
 * re-send on at the time the first copy got: written again, it is the very same point. A reading at a
 * remembered time but with other values, or with a remembered id but other content, is a clash (InfluxDB
 * would merge the two into one point): refused.
 *
 * Readings arrive mostly in time order, so a `ts` later than any remembered time settles it at once; otherwise
 * the device's ring of times is scanned, and values are compared only for a remembered reading with an equal
 * time. What is kept of a reading is its JSON text — usually the payload text itself, so remembering a reading
 * copies nothing — or, when longer than MAX_KEPT_TEXT, a digest of its values' JSON.
 *
 * Bounded twice: at most `perDevice` entries per device (oldest forgotten first) and at most `maxDevices`
 * devices (when a new device would exceed it, the least recently seen tenth are forgotten), so memory is at
 * most perDevice x maxDevices small entries whatever devices send. In memory only: after a restart a re-send
 * with `ts` is the same point again; one recognised by its id alone gets a new time.
 */
export class DuplicateWindow {
  private readonly devices = new Map<string, DeviceWindow>();
  private tick = 0;
  private resentTime = NaN;
  private resentAck = 0;
  /** Where the reading `lookup` last called `resent` is kept, for `passedOn`. */
  private resentIn: DeviceWindow | undefined;
  private resentSlot = 0;

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

  /**
   * Whether `device` sent this reading before. `ts` is the reading's time (undefined when it has no `ts`),
   * `id` its message id; values are compared with `ts` and `id` aside.
   * - `resent`: the same reading again (same id or same `ts`, same values; a re-send with id and `ts` must
   *   repeat both): `firstTime` is the time the first copy got, at which the re-send must be written too.
   * - `id-taken`: the id belongs to a remembered reading with other values or another `ts`.
   * - `ts-taken`: another reading has this time.
   * - `new`: neither. Looks only: `remember` adds a reading once accepted.
   */
  lookup(
    device: string,
    ts: number | undefined,
    id: string | undefined,
    reading: Record<string, unknown>,
  ): Repetition {
    const w = this.devices.get(device);
    if (w === undefined) return 'new';
    let mine: string | undefined;
    if (id !== undefined) {
      const slot = w.slotOfId.get(idKey(id));
      if (slot !== undefined) {
        const time = w.times[slot];
        if (ts !== undefined && ts !== time) return 'id-taken';
        if (!sameKept(w.kept[slot], reading, mine)) return 'id-taken';
        return this.resent(w, slot);
      }
    }
    if (ts === undefined || ts > w.newest) return 'new';
    let found: Repetition = 'new';
    for (let i = 0; i < w.times.length; i++) {
      if (w.times[i] !== ts) continue;
      const kept = w.kept[i];
      if (kept.startsWith(DIGEST)) mine ??= DIGEST + digest(valuesText(reading));
      if (sameKept(kept, reading, mine)) return this.resent(w, i);
      found = 'ts-taken';
    }
    return found;
  }

  /** The time the first copy of the reading that `lookup` last called `resent` was given. */
  get firstTime(): number {
    return this.resentTime;
  }

  /** The ack id the first copy of that reading was accepted with (0 for none). */
  get firstAck(): number {
    return this.resentAck;
  }

  /**
   * Remembers an accepted reading: the time it was given, what `keepOf` kept of it, its id if any, and the
   * ack id it came with (0 for none), by which a re-send can learn whether this copy became durable.
   */
  remember(device: string, time: number, id: string | undefined, kept: string, ack = 0): void {
    const w = this.window(device);
    const key = id === undefined ? undefined : idKey(id);
    let slot: number;
    if (w.times.length < this.perDevice) {
      slot = w.times.length;
      w.times.push(time);
      w.kept.push(kept);
      w.ids.push(key);
      w.acks.push(ack);
    } else {
      slot = w.next;
      // Only a reading whose id is not in the map is remembered, so an id is in one slot at most.
      const old = w.ids[slot];
      if (old !== undefined) w.slotOfId.delete(old);
      w.times[slot] = time;
      w.kept[slot] = kept;
      w.ids[slot] = key;
      w.acks[slot] = ack;
      w.next = (slot + 1) % this.perDevice;
    }
    if (key !== undefined) w.slotOfId.set(key, slot);
    if (time > w.newest) w.newest = time;
  }

  /** Devices currently tracked (for status and tests). */
  get size(): number {
    return this.devices.size;
  }

  private window(device: string): DeviceWindow {
    let w = this.devices.get(device);
    if (!w) {
      if (this.devices.size >= this.maxDevices) this.forgetLeastRecent();
      w = {
        times: [],
        kept: [],
        ids: [],
        acks: [],
        next: 0,
        slotOfId: new Map(),
        newest: -Infinity,
        lastSeen: 0,
      };
      this.devices.set(device, w);
    }
    w.lastSeen = ++this.tick;
    return w;
  }

  /**
   * The re-send `lookup` last recognised goes on with ack id `ack`: a later copy asks about this one, the
   * newest that can become durable.
   */
  passedOn(ack: number): void {
    if (this.resentIn && ack !== 0) this.resentIn.acks[this.resentSlot] = ack;
    this.resentIn = undefined;
  }

  private resent(w: DeviceWindow, slot: number): Repetition {
    this.resentTime = w.times[slot];
    this.resentAck = w.acks[slot];
    this.resentIn = w;
    this.resentSlot = slot;
    return 'resent';
  }

  /** Amortised: one sort per maxDevices/10 new devices, not a reorder on every reading. */
  private forgetLeastRecent(): void {
    const byAge = [...this.devices].sort((a, b) => a[1].lastSeen - b[1].lastSeen);
    const drop = Math.max(1, Math.ceil(this.maxDevices / 10));
    for (let i = 0; i < drop && i < byAge.length; i++) this.devices.delete(byAge[i][0]);
  }
}

/** An id as kept: itself, or a digest when longer than MAX_KEPT_TEXT. */
function idKey(id: string): string {
  return id.length > MAX_KEPT_TEXT ? digest(id) : id;
}

/** Whether a kept reading has the values of `reading`; `mine` is the reading's digest when already made. */
function sameKept(kept: string, reading: Record<string, unknown>, mine: string | undefined): boolean {
  if (kept.startsWith(DIGEST)) return kept === (mine ?? DIGEST + digest(valuesText(reading)));
  return sameValues(JSON.parse(kept) as Record<string, unknown>, reading);
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
