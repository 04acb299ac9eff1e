import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, classifyStatus, parseRetryAfter } from '../../nodes/lib/influx/retry';

describe('write retry policy', () => {
  it('classifies InfluxDB answers', () => {
    assert.equal(classifyStatus(204), 'ok');
    for (const s of [408, 429, 500, 502, 503, 504]) assert.equal(classifyStatus(s), 'retry', String(s));
    for (const s of [401, 403, 404]) assert.equal(classifyStatus(s), 'hold', String(s));
    assert.equal(classifyStatus(400), 'bad');
    assert.equal(classifyStatus(422), 'bad');
    assert.equal(classifyStatus(413), 'tooLarge');
    assert.equal(classifyStatus(405), 'hold');
  });

  it('reads Retry-After as seconds or an HTTP date, never as milliseconds', () => {
    assert.equal(parseRetryAfter('30', 0), 30_000);
    assert.equal(parseRetryAfter(' 0 ', 0), 0);
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:45 GMT', now), 45_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });

  it('backs off exponentially with jitter, and follows a capped Retry-After', () => {
    const lo = new Backoff({ minMs: 1000, maxMs: 8000, random: () => 0 });
    const hi = new Backoff({ minMs: 1000, maxMs: 8000, random: () => 1 });
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => lo.next()),
      [500, 1000, 2000, 4000, 4000],
    );
    assert.deepEqual(
      [1, 2, 3, 4, 5].map(() => hi.next()),
      [1000, 2000, 4000, 8000, 8000],
    );
    const b = new Backoff({ random: () => 1, maxRetryAfterMs: 120_000 });
    assert.equal(b.next(30_000), 31_000); // 30 s plus at most 1 s jitter
    assert.equal(b.next(3_600_000), 121_000); // an hour is capped
    b.reset();
    assert.equal(b.attempts, 0);
  });
});
