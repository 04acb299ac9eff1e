import { rejection, type Rejection } from '../rejection';
import { DuplicateWindow, duplicateKey } from './duplicates';
import { describeType, inspectReading } from './inspect';
import {
  DEFAULT_LIMITS,
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
    const verdict: PayloadVerdict = { batch: false, accepted: [], rejected: [] };
    judge(value, undefined, 1, ctx, limits, verdict);
    return verdict;
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
  for (let i = 0; i < value.length; i++) judge(value[i], i, 2, ctx, limits, verdict);
  return verdict;
}

function judge(
  reading: unknown,
  index: number | undefined,
  depth: number,
  ctx: ValidateContext,
  limits: ValidateLimits,
  verdict: PayloadVerdict,
): void {
  const refusal = judgeReading(reading, index, depth, ctx, limits, verdict);
  if (refusal) {
    const r = index === undefined ? refusal : atIndex(refusal, index);
    verdict.rejected.push(
      index === undefined
        ? { rejection: toRejection(ctx, r) }
        : { rejection: toRejection(ctx, r), index, value: reading },
    );
  }
}

function judgeReading(
  reading: unknown,
  index: number | undefined,
  depth: number,
  ctx: ValidateContext,
  limits: ValidateLimits,
  verdict: PayloadVerdict,
): Refusal | undefined {
  if (typeof reading !== 'object' || reading === null || Array.isArray(reading)) {
    return {
      code: 'NOT_OBJECT',
      reason: `a reading must be a JSON object (got ${describeType(reading)})`,
      details: { path: '' },
    };
  }
  // The fields are a copy without `ts`/`id`, made during the structure walk: coercion and defaults then
  // never touch the caller's object.
  const fields: Record<string, unknown> = {};
  const structural = inspectReading(reading, limits, depth, fields);
  if (structural) return structural;

  const record = reading as Record<string, unknown>;
  // inspectReading refused __proto__ tricks, so plain reads see own properties only.
  const hasTs = record.ts !== undefined;
  const hasId = record.id !== undefined;
  let timestamp = ctx.now;
  if (hasTs) {
    const ts = readTimestamp(record.ts, ctx.now, ctx.window ?? DEFAULT_WINDOW);
    if (!ts.ok) return ts.refusal;
    timestamp = ts.ms;
  }
  let id: string | undefined;
  if (hasId) {
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
  const violation = ctx.schema.check(fields);
  if (violation) return violation;

  if (ctx.duplicates) {
    const key = duplicateKey(id, hasTs ? timestamp : undefined, fields);
    if (key !== undefined && ctx.duplicates.seen(ctx.deviceId ?? '', key)) {
      return {
        code: 'DUPLICATE',
        reason:
          id !== undefined
            ? `reading id ${JSON.stringify(id)} was already accepted from this device`
            : `an identical reading with ts ${timestamp} was already accepted from this device`,
        details: id !== undefined ? { id } : { ts: timestamp },
      };
    }
  }

  const messageId =
    id ??
    `${ctx.deviceId === undefined ? '' : `${ctx.deviceId}:`}${timestamp}${!hasTs && index !== undefined ? `:${index}` : ''}`;
  verdict.accepted.push(
    index === undefined ? { fields, timestamp, messageId } : { fields, timestamp, messageId, index },
  );
  return undefined;
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
