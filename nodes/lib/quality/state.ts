/**
 * Per device and field filter state in fixed-size records inside a few large typed arrays ("slabs"):
 * no object per field, nothing for the garbage collector to trace, and a compact binary form on disk.
 *
 * Field record (window W, default 7): FIELD_DOUBLES + W doubles and FIELD_INTS 32-bit words =
 * 8·(8+7) + 4·4 = 136 bytes, the learned noise scale and level-shift run included. Device record: DEVICE_DOUBLES doubles (counters for the scorecard) and
 * DEVICE_COUNTERS uint32 and `maxFields` int32 slot references. docs/quality.md has the measured total per device-field.
 */
import { createHash } from 'node:crypto';

// Field record, doubles.
export const F_LAST_TS = 0; // event time of the newest reading (any value): order check, silence
export const F_VALUE = 1; // newest in-range value (flat line, first differences for the noise estimate)
export const F_OUT_TS = 2; // event time of the newest accepted value: passed every check, or a confirmed new level
export const F_OUT = 3; // that value (LOCF, the rate of change reference)
export const F_TREND = 4; // running mean of the change per ms between values that agree with the level
export const F_INTERVAL = 5; // running typical time between in-range values (ms), 0 = not known yet
export const F_FLAT_SINCE = 6; // event time of the first reading of the current run of identical values
export const F_VALUE_TS = 7; // event time of the newest in-range value
export const F_RING = 8; // W ring slots of in-range values (Hampel window)
export const FIELD_DOUBLES = 8;
// Field record, int32.
export const I_RING = 0; // next ring slot to write | values in the ring (<= W) << 8
export const I_FLAT_RUN = 1; // identical readings in a row so far (1 = just this one)
export const I_SHIFT = 2; // outliers in a row so far | SHIFT_FIRST_REPLACED | noise samples << NOISE_SAMPLES_SHIFT
export const I_NOISE = 3; // float32 (through fieldF32): running mean |error of the trend-carried median| (|first difference| until the window is full), 0 = none yet
export const FIELD_INTS = 4;
export const SHIFT_RUN_MASK = 0xff;
/** I_SHIFT bit: the first outlier of the current run was replaced (restored if the run becomes a new level). */
export const SHIFT_FIRST_REPLACED = 0x100;
/** I_SHIFT bits 16..: first differences the noise estimate has seen so far (saturates). */
export const NOISE_SAMPLES_SHIFT = 16;
export const NOISE_SAMPLES_MASK = ~0xffff;

// Device record, doubles (times).
export const D_LAST_SEEN = 0; // wall clock of the last update (TTL eviction)
export const D_LAST_TS = 1; // newest event time (gap detection)
export const D_FIRST_TS = 2;
export const DEVICE_DOUBLES = 3;
// Device record, uint32 counters for the scorecard (wrap after 4e9, i.e. 136 years at one reading a second).
export const C_READINGS = 0;
export const C_FIELD_VALUES = 1;
export const C_RANGE = 2;
export const C_SPIKE = 3;
export const C_RATE = 4;
export const C_FLAT = 5;
export const C_ORDER = 6;
export const C_MISSING = 7;
export const C_IMPUTED = 8;
export const C_REJECTED = 9;
export const C_GAP_SLOTS = 10;
export const C_FILLED = 11;
export const DEVICE_COUNTERS = 12;

/**
 * Where the quality engine keeps its state. This in-process implementation is the only one today; a shared
 * store (Redis) for scale-out would keep the same records (one device record plus its field records is one
 * small binary value) and load a device's records into these slabs before its readings are processed.
 * Arrays are replaced when they grow: read them again after any call that may create a record.
 */
export interface QualityStateStore {
  readonly window: number;
  readonly maxFields: number;
  /** Doubles per field record: FIELD_DOUBLES + window. */
  readonly fieldStride: number;
  readonly fieldF64: Float64Array;
  readonly fieldI32: Int32Array;
  /** The same memory as fieldI32, for the float32 words (I_NOISE). */
  readonly fieldF32: Float32Array;
  readonly deviceF64: Float64Array;
  readonly deviceU32: Uint32Array;
  /** Device record index; -1 if absent and !create. */
  device(id: string, create: boolean): number;
  /** Field record index of `fieldIndex` (< maxFields) on device record `dev`; -1 if absent and !create. */
  field(dev: number, fieldIndex: number, create: boolean): number;
  /** Calls `fn` for every device. */
  forEachDevice(fn: (id: string, dev: number) => void): void;
  /** Drops devices not updated since `cutoff` (wall clock ms); returns how many. */
  evictIdle(cutoff: number): number;
  readonly deviceCount: number;
  readonly fieldCount: number;
  /** Bytes held by the records (allocated, including room to grow). */
  readonly slabBytes: number;
  /** Every byte of state: all records with their room to grow, plus the device ids (see ID_ENTRY_BYTES). */
  readonly bytes: number;
  /** A snapshot for the state file (see MemoryStateStore.serialize). */
  serialize(fieldNames: readonly string[]): Uint8Array;
}

/**
 * Bytes of one device id besides its characters (one byte each): its Map entry (key, value, chain link, and
 * as much again while the table has room to grow: 48) and its string header (16), on 64-bit V8.
 */
const ID_ENTRY_BYTES = 64;

/** Growable pool of fixed-size records with a free list. */
class RecordPool {
  capacity: number;
  used = 0;
  private readonly free: number[] = [];

  constructor(initial: number) {
    this.capacity = initial;
  }

  /** Returns a record index; `grow(newCapacity)` is called first when the pool is full. */
  alloc(grow: (capacity: number) => void): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.capacity) {
      this.capacity *= 2;
      grow(this.capacity);
    }
    return this.used++;
  }

  release(index: number): void {
    this.free.push(index);
  }

  get live(): number {
    return this.used - this.free.length;
  }
}

function grown<T extends Float64Array | Int32Array | Uint32Array>(old: T, length: number): T {
  const next = new (old.constructor as new (n: number) => T)(length);
  next.set(old);
  return next;
}

export class MemoryStateStore implements QualityStateStore {
  fieldF64: Float64Array;
  fieldI32: Int32Array;
  fieldF32: Float32Array;
  deviceF64: Float64Array;
  deviceU32: Uint32Array;
  /** Per device: maxFields field record indexes, -1 = none. */
  private deviceFields: Int32Array;
  private readonly ids = new Map<string, number>();
  private readonly fieldPool: RecordPool;
  private readonly devicePool: RecordPool;
  readonly fieldStride: number;

  constructor(
    readonly window = 7,
    readonly maxFields = 16,
    /** Capacity hint: devices expected, so that the slabs need not grow (and copy) while filling up. */
    initialDevices = 256,
  ) {
    if (!Number.isInteger(window) || window < 3 || window > 63) throw new RangeError('window must be 3..63');
    this.fieldStride = FIELD_DOUBLES + window;
    this.devicePool = new RecordPool(initialDevices);
    this.fieldPool = new RecordPool(initialDevices * 4);
    this.deviceF64 = new Float64Array(initialDevices * DEVICE_DOUBLES);
    this.deviceU32 = new Uint32Array(initialDevices * DEVICE_COUNTERS);
    this.deviceFields = new Int32Array(initialDevices * maxFields).fill(-1);
    this.fieldF64 = new Float64Array(this.fieldPool.capacity * this.fieldStride);
    this.fieldI32 = new Int32Array(this.fieldPool.capacity * FIELD_INTS);
    this.fieldF32 = new Float32Array(this.fieldI32.buffer);
  }

  device(id: string, create: boolean): number {
    const found = this.ids.get(id);
    if (found !== undefined || !create) return found ?? -1;
    const dev = this.devicePool.alloc((cap) => {
      this.deviceF64 = grown(this.deviceF64, cap * DEVICE_DOUBLES);
      this.deviceU32 = grown(this.deviceU32, cap * DEVICE_COUNTERS);
      const fields = new Int32Array(cap * this.maxFields).fill(-1);
      fields.set(this.deviceFields);
      this.deviceFields = fields;
    });
    this.deviceU32.fill(0, dev * DEVICE_COUNTERS, (dev + 1) * DEVICE_COUNTERS);
    this.deviceF64[dev * DEVICE_DOUBLES + D_LAST_SEEN] = 0;
    this.deviceF64[dev * DEVICE_DOUBLES + D_LAST_TS] = -Infinity;
    this.deviceF64[dev * DEVICE_DOUBLES + D_FIRST_TS] = NaN;
    this.deviceFields.fill(-1, dev * this.maxFields, (dev + 1) * this.maxFields);
    this.ids.set(id, dev);
    return dev;
  }

  field(dev: number, fieldIndex: number, create: boolean): number {
    const ref = dev * this.maxFields + fieldIndex;
    const found = this.deviceFields[ref];
    if (found >= 0 || !create) return found;
    const slot = this.fieldPool.alloc((cap) => {
      this.fieldF64 = grown(this.fieldF64, cap * this.fieldStride);
      this.fieldI32 = grown(this.fieldI32, cap * FIELD_INTS);
      this.fieldF32 = new Float32Array(this.fieldI32.buffer);
    });
    const b = slot * this.fieldStride;
    this.fieldF64.fill(0, b, b + this.fieldStride);
    this.fieldF64[b + F_LAST_TS] = -Infinity;
    this.fieldF64[b + F_OUT_TS] = -Infinity;
    this.fieldF64[b + F_VALUE_TS] = -Infinity;
    this.fieldI32.fill(0, slot * FIELD_INTS, (slot + 1) * FIELD_INTS);
    this.deviceFields[ref] = slot;
    return slot;
  }

  forEachDevice(fn: (id: string, dev: number) => void): void {
    for (const [id, dev] of this.ids) fn(id, dev);
  }

  evictIdle(cutoff: number): number {
    let evicted = 0;
    for (const [id, dev] of this.ids) {
      if (this.deviceF64[dev * DEVICE_DOUBLES + D_LAST_SEEN] >= cutoff) continue;
      for (let f = 0; f < this.maxFields; f++) {
        const slot = this.deviceFields[dev * this.maxFields + f];
        if (slot >= 0) this.fieldPool.release(slot);
      }
      this.devicePool.release(dev);
      this.ids.delete(id);
      evicted++;
    }
    return evicted;
  }

  get deviceCount(): number {
    return this.ids.size;
  }

  get fieldCount(): number {
    return this.fieldPool.live;
  }

  /** Bytes held in typed arrays (allocated capacity, including room to grow). */
  get slabBytes(): number {
    return (
      this.fieldF64.byteLength +
      this.fieldI32.byteLength +
      this.deviceF64.byteLength +
      this.deviceFields.byteLength
    );
  }

  /** O(devices): counts the id strings. */
  get bytes(): number {
    let ids = 0;
    for (const id of this.ids.keys()) ids += ID_ENTRY_BYTES + id.length;
    return this.slabBytes + this.deviceU32.byteLength + ids;
  }

  /**
   * Binary snapshot: magic line, header length (uint32 LE), JSON header (layout, field names, device ids with
   * their field indexes, SHA-256 of the body), then the body: per device its record, then per field its
   * doubles and ints (as doubles). Only live records are written, so the file does not carry free space.
   */
  serialize(fieldNames: readonly string[]): Uint8Array {
    const devices: [string, number[]][] = [];
    const records: number[] = []; // device record of each entry of `devices`
    let fieldRecords = 0;
    for (const [id, dev] of this.ids) {
      const fields: number[] = [];
      for (let f = 0; f < this.maxFields; f++)
        if (this.deviceFields[dev * this.maxFields + f] >= 0) fields.push(f);
      fieldRecords += fields.length;
      devices.push([id, fields]);
      records.push(dev);
    }
    const fieldLen = this.fieldStride + FIELD_INTS;
    const deviceLen = DEVICE_DOUBLES + DEVICE_COUNTERS;
    const body = new Float64Array(devices.length * deviceLen + fieldRecords * fieldLen);
    let o = 0;
    for (let k = 0; k < devices.length; k++) {
      const dev = records[k];
      const fields = devices[k][1];
      body.set(this.deviceF64.subarray(dev * DEVICE_DOUBLES, (dev + 1) * DEVICE_DOUBLES), o);
      o += DEVICE_DOUBLES;
      for (let i = 0; i < DEVICE_COUNTERS; i++) body[o++] = this.deviceU32[dev * DEVICE_COUNTERS + i];
      for (const f of fields) {
        const slot = this.deviceFields[dev * this.maxFields + f];
        body.set(this.fieldF64.subarray(slot * this.fieldStride, (slot + 1) * this.fieldStride), o);
        o += this.fieldStride;
        for (let i = 0; i < FIELD_INTS; i++)
          body[o++] = (i === I_NOISE ? this.fieldF32 : this.fieldI32)[slot * FIELD_INTS + i];
      }
    }
    const bodyBytes = new Uint8Array(body.buffer);
    const header = Buffer.from(
      JSON.stringify({
        version: STATE_VERSION,
        window: this.window,
        maxFields: this.maxFields,
        fieldNames,
        devices,
        sha256: createHash('sha256').update(bodyBytes).digest('hex'),
      }),
    );
    const out = Buffer.alloc(MAGIC.length + 4 + header.length + bodyBytes.length);
    out.write(MAGIC, 0, 'latin1');
    out.writeUInt32LE(header.length, MAGIC.length);
    header.copy(out, MAGIC.length + 4);
    out.set(bodyBytes, MAGIC.length + 4 + header.length);
    return out;
  }

  /**
   * Rebuilds a store from `serialize` output. Throws (with what is wrong) on anything inconsistent; the caller
   * starts empty then. A different window size means a different filter: refused the same way.
   */
  static deserialize(
    bytes: Uint8Array,
    window: number,
    maxFields: number,
  ): { store: MemoryStateStore; fieldNames: string[] } {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (buf.length < MAGIC.length + 4 || buf.toString('latin1', 0, MAGIC.length) !== MAGIC)
      throw new Error('not a quality state file');
    const headerLen = buf.readUInt32LE(MAGIC.length);
    const bodyStart = MAGIC.length + 4 + headerLen;
    if (bodyStart > buf.length || (buf.length - bodyStart) % 8 !== 0) throw new Error('truncated');
    const header = JSON.parse(buf.toString('utf8', MAGIC.length + 4, bodyStart)) as StateHeader;
    if (header.version !== STATE_VERSION) throw new Error(`unknown version ${String(header.version)}`);
    if (header.window !== window) throw new Error(`saved with window ${header.window}, configured ${window}`);
    if (header.maxFields > maxFields)
      throw new Error(`saved with ${header.maxFields} fields per device, limit ${maxFields}`);
    const bodyBytes = buf.subarray(bodyStart);
    if (createHash('sha256').update(bodyBytes).digest('hex') !== header.sha256)
      throw new Error('checksum mismatch');
    const body = new Float64Array(
      bodyBytes.buffer.slice(bodyBytes.byteOffset, bodyBytes.byteOffset + bodyBytes.length),
    );
    const store = new MemoryStateStore(window, maxFields, Math.max(256, header.devices.length));
    const fieldLen = store.fieldStride + FIELD_INTS;
    let o = 0;
    for (const [id, fields] of header.devices) {
      if (o + DEVICE_DOUBLES + fields.length * fieldLen > body.length)
        throw new Error('body shorter than header says');
      const dev = store.device(id, true);
      store.deviceF64.set(body.subarray(o, o + DEVICE_DOUBLES), dev * DEVICE_DOUBLES);
      o += DEVICE_DOUBLES;
      for (let i = 0; i < DEVICE_COUNTERS; i++) store.deviceU32[dev * DEVICE_COUNTERS + i] = body[o++];
      for (const f of fields) {
        if (!Number.isInteger(f) || f < 0 || f >= header.fieldNames.length)
          throw new Error(`bad field index ${f}`);
        const slot = store.field(dev, f, true);
        store.fieldF64.set(body.subarray(o, o + store.fieldStride), slot * store.fieldStride);
        o += store.fieldStride;
        for (let i = 0; i < FIELD_INTS; i++)
          (i === I_NOISE ? store.fieldF32 : store.fieldI32)[slot * FIELD_INTS + i] = body[o++];
      }
    }
    if (o !== body.length) throw new Error('body longer than header says');
    return { store, fieldNames: header.fieldNames };
  }
}

const MAGIC = 'IOTB-QUALITY-STATE\n';
/** 4: the field record holds the noise estimate and the level-shift run (3 held a long-run window scale). */
const STATE_VERSION = 4;

interface StateHeader {
  version: number;
  window: number;
  maxFields: number;
  fieldNames: string[];
  devices: [string, number[]][];
  sha256: string;
}
