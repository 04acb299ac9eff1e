/** How the sender reacts to a write response, and how long it waits before trying again. */

/**
 * - `ok`: stored, acknowledge the batch;
 * - `retry`: transient (network error, 408, 429, 5xx): same batch again after a backoff;
 * - `hold`: needs a person (401/403 credentials, 404 database/bucket missing): keep the data, retry slowly;
 * - `bad`: InfluxDB refused some lines (400/422): isolate them by bisecting, reject those, store the rest;
 * - `tooLarge`: 413: split the batch.
 */
export type WriteOutcome = 'ok' | 'retry' | 'hold' | 'bad' | 'tooLarge';

export function classifyStatus(status: number): WriteOutcome {
  if (status >= 200 && status < 300) return 'ok';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  if (status === 401 || status === 403 || status === 404) return 'hold';
  if (status === 413) return 'tooLarge';
  if (status === 400 || status === 422) return 'bad';
  // Other 4xx (405 wrong endpoint, 415, ...) are configuration errors: never drop the data over them.
  return 'hold';
}

/** Retry-After in milliseconds: delta-seconds (RFC 9110) or an HTTP date; undefined when absent or invalid. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
  factor?: number;
  /** Upper bound for a server's Retry-After: a misconfigured proxy must not park the data for a day. */
  maxRetryAfterMs?: number;
  random?: () => number;
}

/**
 * Exponential backoff with "equal jitter" (half fixed, half random), so many writers that failed together do
 * not retry together. A server's Retry-After, when given, replaces the computed delay (capped), plus up to
 * 10 % (at most 1 s) jitter.
 */
export class Backoff {
  private attempt = 0;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly maxRetryAfterMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.minMs = opts.minMs ?? 1000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.factor = opts.factor ?? 2;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? 300_000;
    this.random = opts.random ?? Math.random;
  }

  /** The delay before the next attempt; `retryAfterMs` is the server's wish, if it said one. */
  next(retryAfterMs?: number): number {
    const exp = Math.min(this.maxMs, this.minMs * this.factor ** this.attempt);
    this.attempt++;
    if (retryAfterMs !== undefined) {
      const wish = Math.min(retryAfterMs, this.maxRetryAfterMs);
      return Math.round(wish + this.random() * Math.min(1000, wish * 0.1));
    }
    return Math.round(exp / 2 + (this.random() * exp) / 2);
  }

  get attempts(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
