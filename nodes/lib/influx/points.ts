/**
 * What the write node accepts, turned into points (DESIGN.md, InfluxDB schema):
 * - a pipeline reading: `msg.device` -> tags `device` (and `type`), `msg.payload` fields -> one field each,
 *   `msg.quality[field]` -> sibling fields `<field>_flag` (string) and `<field>_raw` (the replaced value),
 *   `msg.timestamp` (ms) -> the point's time;
 * - an explicit point `{ measurement, tags, fields, timestamp }`;
 * - an array of either (a device's back-fill), each element with its own `timestamp`/`ts` when it has one;
 *   a reading element otherwise takes its time and quality from the batch's parallel arrays (batch.ts).
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
  device?: { id?: unknown; type?: unknown };
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
  time: unknown,
  qualityIn: unknown,
  defaults: PointDefaults,
  clock: AcceptanceClock,
): PointInput {
  const tags: Record<string, string> = {};
  const device = msg.device;
  if (isObject(device)) {
    if (typeof device.id === 'string' && device.id !== '') tags.device = device.id;
    if (typeof device.type === 'string' && device.type !== '') tags.type = device.type;
  }
  const quality = isObject(qualityIn) ? qualityIn : {};
  const fields: Record<string, FieldValue> = {};
  for (const [k, v] of Object.entries(fieldsIn)) {
    if (k === 'ts' || k === 'id') continue; // reading envelope (DESIGN.md external contract), not data
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
  if (Array.isArray(payload)) {
    return payload.map((el: unknown, i) => {
      if (isExplicit(el)) return explicitPoint(el, defaults, clock);
      if (!isObject(el))
        throw new LineProtocolError('BAD_INPUT', `element ${i} is not an object of fields or a point`);
      const time = el.ts ?? batchElement(msg.timestamp, i);
      return readingPoint(el, msg, time, batchElement(msg.quality, i), defaults, clock);
    });
  }
  if (isExplicit(payload)) return [explicitPoint(payload, defaults, clock)];
  if (isObject(payload))
    return [readingPoint(payload, msg, msg.timestamp ?? payload.ts, msg.quality, defaults, clock)];
  throw new LineProtocolError(
    'BAD_INPUT',
    'msg.payload must be a reading (object of fields), a point {measurement, tags, fields, timestamp} or an array of them',
  );
}
