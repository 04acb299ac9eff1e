/**
 * Nonces seen within the replay window. Entries are kept in insertion order, which is also expiry order
 * (every entry lives `ttlMs`), so expired ones are dropped from the front; `maxEntries` bounds memory under
 * a flood, and a full cache refuses new nonces rather than forgetting live ones (forgetting would let a
 * replay through).
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records `key`; false when it was seen within the window or the cache is full. */
  add(key: string): boolean {
    const now = this.now();
    for (const [k, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(k);
    }
    if (this.seen.has(key) || this.seen.size >= this.maxEntries) return false;
    this.seen.set(key, now + this.ttlMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
