/** Limits and rules for one validate node; every field has a default a production deployment can live with. */
export interface ValidateLimits {
  /** Largest accepted payload in bytes (UTF-8), checked before anything is parsed. */
  maxBytes: number;
  /** Deepest nesting of arrays/objects; a batch array counts as one level. */
  maxDepth: number;
  /** Most properties in one object. */
  maxKeys: number;
  /** Most elements in one array, and most readings in one batch. */
  maxArrayLength: number;
}

export interface TimestampWindow {
  /** How far ahead of the receive time `ts` may be (ms). */
  maxFutureMs: number;
  /** How far behind the receive time `ts` may be (ms). */
  maxAgeMs: number;
}

export const DEFAULT_LIMITS: Readonly<ValidateLimits> = Object.freeze({
  maxBytes: 256 * 1024,
  maxDepth: 32,
  maxKeys: 1000,
  maxArrayLength: 10_000,
});

export const DEFAULT_WINDOW: Readonly<TimestampWindow> = Object.freeze({
  maxFutureMs: 5 * 60_000,
  maxAgeMs: 7 * 24 * 3_600_000,
});

/** Tags iotb-influx-write sets on every reading: a field of the same name is refused. */
export const DEFAULT_TAG_KEYS: ReadonlySet<string> = new Set(['device', 'type']);

/** A refusal before it is counted: lib code builds these, the caller turns them into `msg.rejection`. */
export interface Refusal {
  code: RefusalCode;
  reason: string;
  details?: Record<string, unknown>;
}

/** Stable codes for machines (`msg.rejection.code`). */
export type RefusalCode =
  | 'PARSE'
  | 'ENCODING'
  | 'TOO_LARGE'
  | 'TOO_DEEP'
  | 'FORBIDDEN_KEY'
  | 'NUMBER'
  | 'NOT_OBJECT'
  | 'EMPTY'
  | 'SCHEMA'
  | 'TIMESTAMP'
  | 'ID'
  | 'DUPLICATE'
  | 'DUPLICATE_ID'
  | 'DUPLICATE_TS'
  | 'TAG_NAME'
  | 'NO_SCHEMA'
  | 'SCHEMA_INVALID';
