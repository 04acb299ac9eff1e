/**
 * Bounded per-key rate and lockout state for the broker's connect path. Both keep at most `maxKeys`
 * entries and evict the least recently touched one (Map insertion order, refreshed on use), so a flood
 * of CONNECTs from many addresses or for many made-up device ids cannot grow memory without bound.
 */

function touch<V>(map: Map<string, V>, key: string, value: V, maxKeys: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > maxKeys) map.delete(map.keys().next().value as string);
}

/** Token bucket per key: `ratePerS` sustained, `burst` at once. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`; false when the key is over its rate. */
  take(key: string): boolean {
    if (this.ratePerS <= 0) return true;
    const now = this.now();
    const tokens = this.tokens(key, now);
    const ok = tokens >= 1;
    touch(this.buckets, key, { tokens: ok ? tokens - 1 : tokens, at: now }, this.maxKeys);
    return ok;
  }

  /**
   * Takes one token for `key`, borrowing from the refill of the next `maxWaitMs` when there is none now (the
   * balance goes below zero, so later callers wait behind this one). Returns the milliseconds the caller waits
   * before using its token (0: now), or -1 when even that wait would not do (nothing taken).
   */
  reserve(key: string, maxWaitMs: number): number {
    if (this.ratePerS <= 0) return 0;
    const now = this.now();
    const tokens = this.tokens(key, now);
    const waitMs = tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.ratePerS);
    if (waitMs > maxWaitMs) return -1;
    touch(this.buckets, key, { tokens: tokens - 1, at: now }, this.maxKeys);
    return waitMs;
  }

  /** Milliseconds until `key` has a token again; 0 when it has one now. */
  waitMs(key: string): number {
    if (this.ratePerS <= 0) return 0;
    const tokens = this.tokens(key, this.now());
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) * 1000) / this.ratePerS);
  }

  private tokens(key: string, now: number): number {
    const b = this.buckets.get(key);
    return b ? Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS) : this.burst;
  }

  get size(): number {
    return this.buckets.size;
  }
}

/**
 * Failed-authentication lockout with exponential backoff: after `threshold` failures a key is locked for
 * `baseMs`, doubling per further failure up to `maxMs`. A success clears the key; a key untouched for
 * `maxMs` starts over.
 */
export class Lockout {
  private readonly entries = new Map<string, { failures: number; lockedUntil: number; at: number }>();

  constructor(
    private readonly threshold: number,
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds the key stays locked (0 when not locked). */
  lockedFor(key: string): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    return Math.max(0, e.lockedUntil - this.now());
  }

  /** Records a failure; returns the new lock duration in ms when this failure (re)locks the key, else 0. */
  fail(key: string): number {
    if (this.threshold <= 0) return 0;
    const now = this.now();
    let e = this.entries.get(key);
    if (!e || now - e.at > this.maxMs) e = { failures: 0, lockedUntil: 0, at: now };
    e.failures++;
    e.at = now;
    let lockMs = 0;
    if (e.failures >= this.threshold) {
      lockMs = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(30, e.failures - this.threshold));
      e.lockedUntil = now + lockMs;
    }
    touch(this.entries, key, e, this.maxKeys);
    return lockMs;
  }

  succeed(key: string): void {
    this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
