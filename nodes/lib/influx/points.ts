/**
 * What the write node accepts, turned into points (docs/architecture.md, InfluxDB schema):
 * - a pipeline reading: `msg.device` -> tags `device` (and `type`), `msg.payload` fields -> one field each,
 *   `msg.quality[field]` -> sibling fields `<field>_flag` (string) and `<field>_raw` (the replaced value),
 *   `msg.timestamp` (ms) -> the point's time;
 * - an explicit point `{ measurement, tags, fields, timestamp }`;
 * - an array of either (a device's back-fill, or a batch of many devices' readings), each element with its
 *   own `timestamp`/`ts` when it has one; a reading element otherwise takes its device, time and quality from
 *   the batch's parallel arrays (batch.ts). A bad element is refused alone (`encodeBatch`).
 * The time is fixed here, when the input is accepted: a missing one becomes the acceptance time once, so a
 * retried write carries the same timestamp and overwrites instead of duplicating; each point without a time
 * gets its own (AcceptanceClock), so two such points of one series never merge in InfluxDB.
 */
import { batchElement } from '../batch';
import { LineProtocolError, toTimeNs, type FieldValue, type PointInput } from './line-protocol';

export interface PointDefaults {
  measurement: string;
  /** Suffixes of the sibling fields for values that iotb-quality replaced. */
  rawSuffix: string;
  flagSuffix: string;
}

export const DEFAULT_POINT_DEFAULTS: PointDefaults = {
  measurement: 'telemetry',
  rawSuffix: '_raw',
  flagSuffix: '_flag',
};

export interface ReadingMessage {
  payload?: unknown;
  /** The sender, or an array parallel to the payload (one device per reading) in a batch. */
  device?: unknown;
  timestamp?: unknown;
  quality?: unknown;
  measurement?: unknown;
}

type Obj = Record<string, unknown>;

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function fieldValue(name: string, v: unknown): FieldValue | undefined {
  if (v === null || v === undefined) return undefined; // a missing value is not a point
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'bigint')
    return v;
  throw new LineProtocolError(
    'BAD_FIELD',
    `field ${JSON.stringify(name)} is ${Array.isArray(v) ? 'an array' : `a ${typeof v}`}; fields are numbers, booleans or strings`,
  );
}

function timeOf(v: unknown, clock: AcceptanceClock): string {
  if (v === undefined || v === null) return clock.next();
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'bigint' || v instanceof Date)
    return toTimeNs(v);
  throw new LineProtocolError('BAD_TIMESTAMP', `timestamp must be ms since epoch or ISO-8601 text`);
}

function explicitPoint(p: Obj, defaults: PointDefaults, clock: AcceptanceClock): PointInput {
  const measurement = p.measurement ?? defaults.measurement;
  if (typeof measurement !== 'string')
    throw new LineProtocolError('BAD_MEASUREMENT', 'measurement must be a string');
  if (!isObject(p.fields))
    throw new LineProtocolError('NO_FIELDS', 'an explicit point needs a fields object');
  if (p.tags !== undefined && !isObject(p.tags))
    throw new LineProtocolError('BAD_TAG', 'tags must be an object');
  const fields: Record<string, FieldValue> = {};
  for (const [k, v] of Object.entries(p.fields)) {
    const fv = fieldValue(k, v);
    if (fv !== undefined) fields[k] = fv;
  }
  const tags: Record<string, string> = {};
  for (const [k, v] of Object.entries(p.tags ?? {})) {
    if (typeof v !== 'string')
      throw new LineProtocolError('BAD_TAG', `tag ${JSON.stringify(k)} must be a string`);
    tags[k] = v;
  }
  return { measurement, tags, fields, timeNs: timeOf(p.timestamp, clock) };
}

function readingPoint(
  fieldsIn: Obj,
  msg: ReadingMessage,
  device: unknown,
  time: unknown,
  qualityIn: unknown,
  defaults: PointDefaults,
  clock: AcceptanceClock,
): PointInput {
  const tags: Record<string, string> = {};
  if (isObject(device)) {
    if (typeof device.id === 'string' && device.id !== '') tags.device = device.id;
    if (typeof device.type === 'string' && device.type !== '') tags.type = device.type;
  }
  const quality = isObject(qualityIn) ? qualityIn : {};
  const fields: Record<string, FieldValue> = {};
  for (const [k, v] of Object.entries(fieldsIn)) {
    if (k === 'ts' || k === 'id') continue; // reading envelope (docs/architecture.md, external contract), not data
    const fv = fieldValue(k, v);
    if (fv !== undefined) fields[k] = fv;
  }
  // Flags for every judged field, also one iotb-quality removed from the payload (e.g. flagged missing).
  for (const [k, q] of Object.entries(quality)) {
    if (!isObject(q)) continue;
    if (typeof q.flag === 'string') fields[k + defaults.flagSuffix] = q.flag;
    const raw = fieldValue(k + defaults.rawSuffix, q.raw);
    if (raw !== undefined) fields[k + defaults.rawSuffix] = raw;
  }
  const measurement = typeof msg.measurement === 'string' ? msg.measurement : defaults.measurement;
  return { measurement, tags, fields, timeNs: timeOf(time, clock) };
}

const isExplicit = (v: unknown): v is Obj => isObject(v) && isObject(v.fields);

/**
 * Acceptance times in ns (ms · 10⁶ + a counter), strictly increasing: two points of one series accepted in
 * the same millisecond must not share a timestamp, or InfluxDB would keep only the last of them. One clock
 * per process (`acceptanceClock`) serves every write node, so points of one series written by two nodes
 * (e.g. two writers of `device_events`) cannot collide either; memory is one number.
 */
export class AcceptanceClock {
  private last = 0n;

  constructor(private readonly nowMs: () => number = Date.now) {}

  next(): string {
    let ns = BigInt(this.nowMs()) * 1_000_000n;
    if (ns <= this.last) ns = this.last + 1n;
    this.last = ns;
    return ns.toString();
  }
}

/** The process-wide clock for points without a time of their own. */
export const acceptanceClock = new AcceptanceClock();

/**
 * The points a message carries. Throws LineProtocolError for input that is not a reading or point;
 * `clock` gives the acceptance time for points without their own timestamp.
 */
export function pointsFromMessage(
  msg: ReadingMessage,
  defaults: PointDefaults,
  clock: AcceptanceClock,
): PointInput[] {
  const payload = msg.payload;
  if (Array.isArray(payload)) return payload.map((_el: unknown, i) => elementPoint(msg, i, defaults, clock));
  if (isExplicit(payload)) return [explicitPoint(payload, defaults, clock)];
  if (isObject(payload))
    return [
      readingPoint(payload, msg, msg.device, msg.timestamp ?? payload.ts, msg.quality, defaults, clock),
    ];
  throw new LineProtocolError(
    'BAD_INPUT',
    'msg.payload must be a reading (object of fields), a point {measurement, tags, fields, timestamp} or an array of them',
  );
}

/** The point of element `i` of an array payload; throws LineProtocolError for an element that is none. */
function elementPoint(
  msg: ReadingMessage,
  i: number,
  defaults: PointDefaults,
  clock: AcceptanceClock,
): PointInput {
  const el: unknown = (msg.payload as unknown[])[i];
  if (isExplicit(el)) return explicitPoint(el, defaults, clock);
  if (!isObject(el))
    throw new LineProtocolError('BAD_INPUT', `element ${i} is not an object of fields or a point`);
  const time = el.ts ?? batchElement(msg.timestamp, i);
  return readingPoint(
    el,
    msg,
    batchElement(msg.device, i),
    time,
    batchElement(msg.quality, i),
    defaults,
    clock,
  );
}

/** A point the writer could not take, by its element's position in the message. */
export interface RefusedPoint {
  /** Position in an array payload; undefined for a message of one reading or point. */
  index: number | undefined;
  code: string;
  reason: string;
}

export interface EncodedMessage {
  /** One line protocol record per point that could be encoded. */
  lines: Buffer[];
  /** The elements behind `lines` when some of an array payload were refused; undefined when none was. */
  kept: number[] | undefined;
  refused: RefusedPoint[];
}

/**
 * Encodes every point a message carries, each on its own: an element of an array payload that is not a
 * point, or that the line protocol cannot carry, is refused alone and the others are kept. `encode` is the
 * line protocol encoder with the writer's field types (LineProtocolError for what it refuses).
 */
export function encodeMessage(
  msg: ReadingMessage,
  defaults: PointDefaults,
  clock: AcceptanceClock,
  encode: (point: PointInput) => string,
): EncodedMessage {
  const payload = msg.payload;
  const out: EncodedMessage = { lines: [], kept: undefined, refused: [] };
  if (!Array.isArray(payload)) {
    try {
      out.lines.push(Buffer.from(encode(pointsFromMessage(msg, defaults, clock)[0])));
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      out.refused.push({ index: undefined, code: err.code, reason: err.message });
    }
    return out;
  }
  for (let i = 0; i < payload.length; i++) {
    try {
      out.lines.push(Buffer.from(encode(elementPoint(msg, i, defaults, clock))));
      out.kept?.push(i);
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      // From the first refusal on, the kept elements are listed (the ones before it were all kept).
      out.kept ??= Array.from({ length: i }, (_, k) => k);
      out.refused.push({ index: i, code: err.code, reason: err.message });
    }
  }
  return out;
}
