/**
 * The broker's default per-address connect limit against the reconnect requirement: 1,000 devices behind one
 * address, each retrying as the reference client does (every 500 ms; MQTT.js's default is 1 s) when dropped, are
 * all admitted within 10 s of a restart. Simulated on a fake clock: the limiter's arithmetic, not this machine's
 * speed (bench/reconnect.ts measures that).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_LIMITS } from '../../nodes/lib/broker/broker';
import { Lockout, RateLimiter } from '../../nodes/lib/broker/limits';

/**
 * Ms until all `devices` clients of one address are admitted: each attempt either gets a token now, waits for
 * its turn (at most `queueMs`, as the broker holds the connection) or is dropped and retried `retryMs` later.
 */
function admitAllMs(
  ratePerS: number,
  burst: number,
  queueMs: number,
  devices: number,
  retryMs: number,
): number {
  let now = 0;
  const limiter = new RateLimiter(ratePerS, burst, 10_000, () => now);
  let waiting = devices;
  let last = 0;
  for (; waiting > 0; now += retryMs) {
    for (let n = waiting; n > 0; n--) {
      const wait = limiter.reserve('127.0.0.1', queueMs);
      if (wait < 0) continue;
      waiting--;
      last = Math.max(last, now + wait);
    }
  }
  return last;
}

describe('default connect limits: a reconnect storm from one address', () => {
  const { connectRatePerIp, connectBurstPerIp, connectQueueMs } = DEFAULT_LIMITS;

  for (const retryMs of [500, 1000])
    it(`admits 1,000 devices retrying every ${retryMs} ms within 10 s`, () => {
      const ms = admitAllMs(connectRatePerIp, connectBurstPerIp, connectQueueMs, 1000, retryMs);
      assert.ok(ms <= 10_000, `${ms} ms`);
    });

  it('would not with the former 20/s (burst 40): the requirement constrains the default', () => {
    assert.ok(admitAllMs(20, 40, 0, 1000, 500) > 10_000);
  });

  it('queues a connection over the rate for its turn, in order, up to the bound; beyond it drops', () => {
    let now = 0;
    const limiter = new RateLimiter(2, 1, 10, () => now);
    assert.deepEqual(
      [0, 1, 2, 3].map(() => limiter.reserve('a', 1000)),
      [0, 500, 1000, -1],
      'one now, then one every 500 ms; the fourth would wait 1.5 s',
    );
    now += 500;
    assert.equal(limiter.reserve('a', 1000), 1000, 'behind the two still queued');
    assert.equal(limiter.reserve('b', 1000), 0, 'another address has its own bucket');
    assert.equal(new RateLimiter(0, 0).reserve('a', 0), 0, 'rate 0: unlimited');
  });

  it('still locks a guessed device out after the threshold, whatever the connect rate', () => {
    let now = 0;
    const lockout = new Lockout(
      DEFAULT_LIMITS.lockoutThreshold,
      DEFAULT_LIMITS.lockoutBaseMs,
      DEFAULT_LIMITS.lockoutMaxMs,
      10_000,
      () => now,
    );
    const key = 'dev-0@127.0.0.1';
    for (let i = 1; i < DEFAULT_LIMITS.lockoutThreshold; i++) assert.equal(lockout.fail(key), 0);
    assert.equal(lockout.fail(key), DEFAULT_LIMITS.lockoutBaseMs);
    now += DEFAULT_LIMITS.lockoutBaseMs / 2;
    assert.ok(lockout.lockedFor(key) > 0);
    assert.equal(lockout.lockedFor('dev-1@127.0.0.1'), 0, 'the other devices of that address are not locked');
  });
});
