import type { Refusal, TimestampWindow } from './options';

/** Below this a millisecond timestamp would be before March 1973: the device almost surely sent seconds. */
const SECONDS_BELOW = 1e11;
/** Above this a millisecond timestamp would be after the year 5000: microseconds or nanoseconds. */
const SUB_MILLISECONDS_ABOVE = 1e14;
/** RFC 3339 date-time with a mandatory offset: a local time without zone cannot be placed on the time axis. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

export type TimestampResult = { ok: true; ms: number } | { ok: false; refusal: Refusal };

/**
 * The event time of a reading from its `ts` (ms since epoch or ISO-8601 with offset), checked for an
 * obviously wrong unit and against the accepted window around `now` (the receive time).
 */
export function readTimestamp(ts: unknown, now: number, window: TimestampWindow): TimestampResult {
  let ms: number;
  if (typeof ts === 'number') {
    if (!Number.isInteger(ts)) return refuse(`ts must be whole milliseconds since 1970 (got ${ts})`, ts);
    if (ts < SECONDS_BELOW) {
      return refuse(
        `ts ${ts} looks like seconds, not milliseconds since 1970; it would be stored as ${iso(ts)}`,
        ts,
      );
    }
    if (ts > SUB_MILLISECONDS_ABOVE) {
      return refuse(`ts ${ts} looks like microseconds or nanoseconds, not milliseconds since 1970`, ts);
    }
    ms = ts;
  } else if (typeof ts === 'string') {
    ms = ISO_8601.test(ts) ? Date.parse(ts) : NaN;
    if (Number.isNaN(ms)) {
      return refuse(
        `ts ${JSON.stringify(ts.slice(0, 64))} is not an ISO-8601 date-time with a zone (e.g. 2026-01-31T12:00:00Z)`,
        ts,
      );
    }
  } else {
    return refuse(`ts must be milliseconds since 1970 or an ISO-8601 string (got ${typeof ts})`, ts);
  }

  if (ms > now + window.maxFutureMs) {
    return refuse(
      `ts ${iso(ms)} is ${duration(ms - now)} in the future (at most ${duration(window.maxFutureMs)} allowed)`,
      ts,
      { ms, now },
    );
  }
  if (ms < now - window.maxAgeMs) {
    return refuse(
      `ts ${iso(ms)} is ${duration(now - ms)} old (at most ${duration(window.maxAgeMs)} allowed)`,
      ts,
      { ms, now },
    );
  }
  return { ok: true, ms };
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

/** A duration as a person says it: "12 minutes", "9 days". */
export function duration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms >= size) {
      const n = Math.floor(ms / size);
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${ms} ms`;
}

function refuse(reason: string, actual: unknown, extra?: Record<string, unknown>): TimestampResult {
  return { ok: false, refusal: { code: 'TIMESTAMP', reason, details: { path: '/ts', actual, ...extra } } };
}
