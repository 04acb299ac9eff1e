import { rejection, type Rejection } from '../rejection';
import type { ReadingClock } from './clock';
import { duplicatesTotal } from '../metrics';
import { keepOf, type DuplicateWindow, type Repetition } from './duplicates';
import { describeType, inspectReading, pointerSegment } from './inspect';
import {
  DEFAULT_LIMITS,
  DEFAULT_TAG_KEYS,
  DEFAULT_WINDOW,
  type Refusal,
  type TimestampWindow,
  type ValidateLimits,
} from './options';
import { parsePayload } from './parse';
import type { ReadingSchema } from './schema';
import { readTimestamp } from './timestamp';

/** The most characters a device message id may have. */
const MAX_ID_LENGTH = 128;

export interface ValidateContext {
  /** Compiled schema for the readings; undefined when none could be found (every reading is refused). */
  schema: ReadingSchema | undefined;
  /** Why there is no schema: the refusal each reading gets then (NO_SCHEMA or SCHEMA_INVALID). */
  noSchema?: Refusal;
  limits?: ValidateLimits;
  window?: TimestampWindow;
  /** Receive time (ms since epoch): the event time of readings without `ts`, and the window's reference. */
  now: number;
  /** The authenticated sender (`msg.device.id`), for message ids and duplicate detection. */
  deviceId?: string;
  duplicates?: DuplicateWindow;
  /** The ack id the payload came with (`msg.ackId`, or the publication's in a micro-batch); null for none. */
  ackId?: number | null;
  /**
   * Whether an ack id ended `stored` (the ack ledger): a re-send is dropped only when its first copy's did,
   * otherwise passed on to be written again. Without it every re-send is passed on.
   */
  acks?: { wasStored(id: number): boolean };
  /**
   * Gives readings without `ts` a time strictly increasing per device (`readingClock`); without it they get
   * `now` as it is.
   */
  clock?: ReadingClock;
  /**
   * Names a field may not have because the writer stores them as tags (`device`, `type`, ...): such a field
   * would shadow the tag in queries. Default DEFAULT_TAG_KEYS.
   */
  tagKeys?: ReadonlySet<string>;
  /** Count refusals in `iotb_rejected_total` (false for the editor's dry run). */
  count?: boolean;
}

export interface AcceptedReading {
  /** The reading's fields: `ts` and `id` taken out, coerced/defaulted/stripped as configured. */
  fields: Record<string, unknown>;
  /** Event time, ms since epoch. */
  timestamp: number;
  messageId: string;
  /** Position in a batch array. */
  index?: number;
}

export interface RejectedReading {
  rejection: Rejection;
  /** Position in a batch array; absent when the whole payload was refused. */
  index?: number;
  /** The refused element of a batch (the whole payload stays on the message otherwise). */
  value?: unknown;
}

export interface PayloadVerdict {
  /** The payload was an array of readings. */
  batch: boolean;
  accepted: AcceptedReading[];
  rejected: RejectedReading[];
}

/**
 * Judges one payload: parse within limits, then every reading on its own (structure, `ts`, `id`, schema,
 * duplicates). A batch array passes its good readings and refuses the bad ones with their index.
 */
export function validatePayload(payload: unknown, ctx: ValidateContext): PayloadVerdict {
  const limits = ctx.limits ?? DEFAULT_LIMITS;
  const parsed = parsePayload(payload, limits);
  if (!parsed.ok) return whole(ctx, parsed.refusal);
  const value = parsed.value;
  if (!Array.isArray(value)) {
    const result = judgeReading(value, undefined, 1, ctx, limits, parsed.source);
    return isAccepted(result)
      ? { batch: false, accepted: [result], rejected: [] }
      : { batch: false, accepted: [], rejected: [{ rejection: toRejection(ctx, result) }] };
  }
  if (value.length === 0)
    return whole(ctx, { code: 'EMPTY', reason: 'payload is an empty array: no readings' });
  if (value.length > limits.maxArrayLength) {
    return whole(ctx, {
      code: 'TOO_LARGE',
      reason: `payload has ${value.length} readings, more than the limit of ${limits.maxArrayLength}`,
      details: { limit: limits.maxArrayLength },
    });
  }
  const verdict: PayloadVerdict = { batch: true, accepted: [], rejected: [] };
  for (let i = 0; i < value.length; i++) {
    const reading: unknown = value[i];
    const result = judgeReading(reading, i, 2, ctx, limits, parsed.source);
    if (isAccepted(result)) verdict.accepted.push(result);
    else verdict.rejected.push({ rejection: toRejection(ctx, atIndex(result, i)), index: i, value: reading });
  }
  return verdict;
}

function isAccepted(result: AcceptedReading | Refusal): result is AcceptedReading {
  return 'fields' in result;
}

function judgeReading(
  reading: unknown,
  index: number | undefined,
  depth: number,
  ctx: ValidateContext,
  limits: ValidateLimits,
  /** The payload text, or undefined when the payload was an object of the caller's. */
  source: string | undefined,
): AcceptedReading | Refusal {
  if (typeof reading !== 'object' || reading === null || Array.isArray(reading)) {
    return {
      code: 'NOT_OBJECT',
      reason: `a reading must be a JSON object (got ${describeType(reading)})`,
      details: { path: '' },
    };
  }
  const record = reading as Record<string, unknown>;
  const single = index === undefined;
  // A reading parsed here is ours and becomes the payload as it is, unless `ts`/`id` must come out or the
  // schema changes what it checks (a refused batch element leaves as the device sent it). A caller's object
  // is always copied (during the structure walk), so coercion and defaults never touch it.
  const copy =
    source === undefined ||
    record.ts !== undefined ||
    record.id !== undefined ||
    ctx.schema?.mutates === true;
  const fields: Record<string, unknown> = copy ? {} : record;
  const structural = inspectReading(record, limits, depth, copy ? fields : undefined);
  if (structural) return structural;

  // inspectReading refused __proto__ tricks, so plain reads see own properties only.
  const rawTs = record.ts;
  const hasTs = rawTs !== undefined;
  let timestamp = ctx.now;
  if (hasTs) {
    const ts = readTimestamp(rawTs, ctx.now, ctx.window ?? DEFAULT_WINDOW);
    if (!ts.ok) return ts.refusal;
    timestamp = ts.ms;
  }
  let id: string | undefined;
  if (record.id !== undefined) {
    const raw = record.id;
    if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_ID_LENGTH) {
      return {
        code: 'ID',
        reason: `id must be a string of 1 to ${MAX_ID_LENGTH} characters (got ${describeType(raw)}${typeof raw === 'string' ? ` of length ${raw.length}` : ''})`,
        details: { path: '/id' },
      };
    }
    id = raw;
  }

  if (!ctx.schema) {
    return ctx.noSchema ?? { code: 'NO_SCHEMA', reason: 'no schema to validate against' };
  }
  // A reading with `ts` or `id` is looked up before the schema runs: coercion and defaults may change
  // `fields`, and the window compares readings as they came.
  const duplicates = ctx.duplicates;
  const device = ctx.deviceId ?? '';
  let kept: string | undefined;
  let repetition: Repetition = 'new';
  if (duplicates && (hasTs || id !== undefined)) {
    repetition = duplicates.lookup(device, hasTs ? timestamp : undefined, id, record);
    if (repetition === 'new') kept = keepOf(record, single ? source : undefined);
  }
  const violation = ctx.schema.check(fields);
  if (violation) return violation;
  const shadowed = tagNamedField(fields, ctx.tagKeys ?? DEFAULT_TAG_KEYS);
  if (shadowed !== undefined) {
    return {
      code: 'TAG_NAME',
      reason: `field ${JSON.stringify(shadowed)} has the name of a tag; stored, it would take the tag's place in queries (WHERE "${shadowed}" = ...)`,
      details: { path: pointerSegment(shadowed) },
    };
  }

  if (repetition === 'ts-taken') {
    return {
      code: 'DUPLICATE_TS',
      reason: `another reading with ts ${timestamp} was already accepted from this device; InfluxDB would merge the two into one point`,
      details: { ts: timestamp },
    };
  }
  if (repetition === 'id-taken') {
    return {
      code: 'DUPLICATE_ID',
      reason: `reading id ${JSON.stringify(id)} was already accepted from this device for another reading`,
      details: { id },
    };
  }
  if (repetition === 'resent' && duplicates) {
    const firstAck = duplicates.firstAck;
    if (firstAck !== 0 && ctx.acks?.wasStored(firstAck) === true) {
      return {
        code: 'DUPLICATE',
        reason:
          id === undefined
            ? `an identical reading with ts ${timestamp} from this device is already stored`
            : `reading id ${JSON.stringify(id)} from this device is already stored`,
        details: id === undefined ? { ts: timestamp } : { id },
      };
    }
    // Not known to be durable: written again at the first copy's time it is the same point, stored once,
    // and only its own storage acknowledges it.
    timestamp = duplicates.firstTime;
    duplicates.passedOn(ctx.ackId ?? 0);
    if (ctx.count !== false) duplicatesTotal.labels('validate').inc();
  } else {
    if (!hasTs && ctx.clock) timestamp = ctx.clock.next(device, ctx.now);
    if (kept !== undefined) duplicates?.remember(device, timestamp, id, kept, ctx.ackId ?? 0);
  }

  const messageId =
    id ??
    (ctx.deviceId === undefined ? '' : ctx.deviceId + ':') +
      decimal(timestamp) +
      (!hasTs && !single ? `:${index}` : '');
  return single ? { fields, timestamp, messageId } : { fields, timestamp, messageId, index };
}

/** The first of `tagKeys` that is a field of the reading. */
function tagNamedField(fields: Record<string, unknown>, tagKeys: ReadonlySet<string>): string | undefined {
  for (const key of tagKeys) if (Object.prototype.hasOwnProperty.call(fields, key)) return key;
  return undefined;
}

/**
 * `String(ms)` for a time in ms, as two small integers: V8 turns a 13-digit number into text through its
 * general double path, about four times slower, and every reading needs its message id.
 */
export function decimal(ms: number): string {
  if (!Number.isInteger(ms) || ms < 1e7 || ms >= 1e16) return String(ms);
  const high = Math.floor(ms / 1e7);
  const low = String(ms - high * 1e7 + 1e7); // "1" + the 7 low digits with their leading zeros
  return String(high) + low.slice(1);
}

function atIndex(refusal: Refusal, index: number): Refusal {
  return {
    code: refusal.code,
    reason: `reading ${index}: ${refusal.reason}`,
    details: { index, ...refusal.details },
  };
}

function whole(ctx: ValidateContext, refusal: Refusal): PayloadVerdict {
  return { batch: false, accepted: [], rejected: [{ rejection: toRejection(ctx, refusal) }] };
}

function toRejection(ctx: ValidateContext, r: Refusal): Rejection {
  if (ctx.count === false) {
    return r.details
      ? { stage: 'validate', code: r.code, reason: r.reason, details: r.details }
      : { stage: 'validate', code: r.code, reason: r.reason };
  }
  return rejection('validate', r.code, r.reason, r.details);
}
