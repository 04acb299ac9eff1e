import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Authenticator } from '../../nodes/lib/auth/authenticator';
import { RateLimiter } from '../../nodes/lib/broker/limits';
import { healthHttpStatus, healthReport, type BrokerProbe } from '../../nodes/lib/health';
import type { SpoolCondition } from '../../nodes/lib/spool';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { DeviceSimulator } from '../../nodes/lib/simulator';
import { tempDir } from '../support/servers';

const broker = (state: string, connections = 2): BrokerProbe => ({
  state,
  stats: () => ({ connections, online: connections }),
});

describe('health report', () => {
  it('is ok with a listening broker and writers that are idle or sending; depth sums the spools', () => {
    const r = healthReport(
      [{ id: 'b', probe: broker('listening') }],
      [
        { id: 'w1', snapshot: { state: 'idle', queued: 3, written: 10 } },
        { id: 'w2', snapshot: { state: 'sending', queued: 4, written: 1 } },
      ],
      42,
    );
    assert.equal(r.status, 'ok');
    assert.equal(r.at, 42);
    assert.equal(r.spool.depth, 7);
    assert.deepEqual(r.broker.brokers, [{ id: 'b', state: 'listening', connections: 2, online: 2 }]);
    assert.equal(healthHttpStatus(r), 200);
  });

  it('is degraded while a writer retries or holds (data in the spool), with its last error', () => {
    const r = healthReport(
      [{ id: 'b', probe: broker('listening') }],
      [
        {
          id: 'w',
          snapshot: { state: 'retrying', lastError: 'InfluxDB unreachable', queued: 9, written: 0 },
        },
      ],
    );
    assert.equal(r.status, 'degraded');
    assert.equal(r.database.writers[0].lastError, 'InfluxDB unreachable');
    assert.deepEqual(r.reasons, ['w: InfluxDB retrying (InfluxDB unreachable)']);
    assert.equal(r.spool.depth, 9);
    assert.equal(healthHttpStatus(r), 503);
  });

  it('is degraded for a while after a held reading timed out, naming the reason; waiting acks are not', () => {
    const acks = { held: 5, waiting: 7, timeouts: 0, lastTimeoutAt: 0 };
    const withAcks = (a: typeof acks): BrokerProbe => ({
      state: 'listening',
      stats: () => ({ connections: 1, online: 1, acks: a }),
    });
    const writer = { id: 'w', snapshot: { state: 'idle', queued: 0, written: 0 } };
    const busy = healthReport([{ id: 'b', probe: withAcks(acks) }], [writer], 1_000_000);
    assert.equal(busy.status, 'ok');
    assert.equal(busy.broker.reasons, undefined);
    const timedOut = { ...acks, timeouts: 3, lastTimeoutAt: 1_000_000 };
    const r = healthReport([{ id: 'b', probe: withAcks(timedOut) }], [writer], 1_000_000 + 60_000);
    assert.equal(r.broker.status, 'degraded');
    assert.equal(r.status, 'degraded');
    assert.match(r.broker.reasons?.[0] ?? '', /3 in all/);
    const later = healthReport([{ id: 'b', probe: withAcks(timedOut) }], [writer], 1_000_000 + 6 * 60_000);
    assert.equal(later.status, 'ok');
  });

  it('is degraded with the reason while a spool refuses input or its volume runs low; ok once space is back', () => {
    const MiB = 1024 * 1024;
    const spool = (over: Partial<SpoolCondition>): SpoolCondition => ({
      pendingBytes: MiB,
      maxBytes: 1024 * MiB,
      full: false,
      diskFull: false,
      freeBytes: 100 * MiB,
      sizeBytes: 200 * MiB,
      lowBytes: 2 * MiB,
      ...over,
    });
    const report = (c: SpoolCondition) =>
      healthReport(
        [{ id: 'b', probe: broker('listening') }],
        [{ id: 'w1', name: 'telemetry', snapshot: { state: 'idle', queued: 5, written: 0, spool: c } }],
      );
    const cases: [Partial<SpoolCondition>, string | undefined, RegExp | undefined][] = [
      [{}, undefined, undefined],
      [
        { full: true, pendingBytes: 1024 * MiB },
        'spool full',
        /^telemetry: spool full \(1024\.0 MiB of 1024\.0 MiB/,
      ],
      [
        { diskFull: true, freeBytes: 0 },
        'spool volume full',
        /^telemetry: spool volume full \(0\.0 MiB free of 200\.0 MiB\)$/,
      ],
      [{ diskFull: true, freeBytes: undefined }, 'spool volume full', /appends fail with ENOSPC/],
      [{ freeBytes: MiB }, 'free space low', /^telemetry: free space low \(1\.0 MiB free/],
      // Deliveries gave space back; no append has proven it yet, but the volume is not full any more.
      [{ diskFull: true, freeBytes: 50 * MiB }, undefined, undefined],
    ];
    for (const [over, reason, sentence] of cases) {
      const r = report(spool(over));
      assert.equal(r.database.writers[0].spoolReason, reason, JSON.stringify(over));
      assert.equal(r.status, reason ? 'degraded' : 'ok');
      assert.equal(r.spool.status, reason ? 'degraded' : 'ok');
      assert.equal(healthHttpStatus(r), reason ? 503 : 200);
      assert.equal(r.database.status, 'ok', 'InfluxDB itself is fine');
      if (sentence) assert.match(r.reasons[0], sentence);
      else assert.deepEqual(r.reasons, []);
      assert.equal(r.spool.bytes, spool(over).pendingBytes);
    }
  });

  it('is down when the broker does not listen, a writer has no spool, or a part is missing', () => {
    assert.equal(healthReport([{ id: 'b', probe: broker('failed') }], []).broker.status, 'down');
    const noSpool = healthReport(
      [{ id: 'b', probe: broker('listening') }],
      [{ id: 'w', snapshot: undefined }],
    );
    assert.equal(noSpool.database.status, 'down');
    assert.equal(noSpool.status, 'down');
    assert.equal(healthReport([], []).status, 'down');
  });
});

describe('RateLimiter (token bucket per key)', () => {
  it('says how long until the next token, which is when take() succeeds again', () => {
    let clock = 0;
    const rate = new RateLimiter(4, 2, 10, () => clock);
    assert.equal(rate.waitMs('d'), 0, 'a new key starts with a full burst');
    assert.deepEqual([rate.take('d'), rate.take('d'), rate.take('d')], [true, true, false]);
    assert.equal(rate.waitMs('d'), 250, 'one token at 4/s');
    clock += 240;
    const wait = rate.waitMs('d');
    assert.ok(wait > 0 && wait <= 11, `${wait} ms`);
    assert.equal(rate.take('d'), false);
    clock += wait;
    assert.equal(rate.waitMs('d'), 0);
    assert.equal(rate.take('d'), true);
    assert.equal(new RateLimiter(0, 0).waitMs('d'), 0, 'rate 0: unlimited');
  });
});

describe('per-device rate limit of the authenticator', () => {
  it('answers 429 RATE_LIMITED above the rate, counts only authenticated requests, refills with time', () => {
    const dir = tempDir('auth-rate');
    let clock = 1_700_000_000_000;
    const reg = new Registry(
      new FileDeviceStore(join(dir.path, 'r.json')),
      'rate-test-secret-0123456789abcdef',
      {
        now: () => clock,
      },
    );
    try {
      reg.putType({ name: 't' });
      const token = reg.createDevice({ id: 'd1', type: 't' }).token;
      const auth = new Authenticator(reg, { mode: 'bearer', ratePerDeviceS: 2, now: () => clock });
      const req = { headers: { authorization: `Bearer ${token}` }, deviceId: 'd1' };
      // Strangers do not use up the device's allowance.
      for (let i = 0; i < 10; i++)
        assert.equal(
          auth.authenticate({ headers: { authorization: 'Bearer nope' }, deviceId: 'd1' }).ok,
          false,
        );
      const outcomes = Array.from({ length: 5 }, () => auth.authenticate(req));
      assert.deepEqual(
        outcomes.map((o) => o.ok),
        [true, true, true, true, false],
        'a burst of twice the rate, then refused',
      );
      const refused = outcomes[4];
      assert.ok(!refused.ok && refused.status === 429 && refused.code === 'RATE_LIMITED');
      clock += 500; // one more token at 2/s
      assert.equal(auth.authenticate(req).ok, true);
      assert.equal(auth.authenticate(req).ok, false);
      const unlimited = new Authenticator(reg, { mode: 'bearer', now: () => clock });
      for (let i = 0; i < 50; i++) assert.equal(unlimited.authenticate(req).ok, true);
    } finally {
      reg.close();
      dir.remove();
    }
  });
});

describe('device simulator options', () => {
  const registry = {
    getDevice: () => undefined,
    createDevice: () => ({ token: 't' }),
    rotateToken: () => ({ token: 't' }),
  };
  const base = { url: 'mqtt://127.0.0.1:1', count: 2, idPrefix: 'sim', type: 'sensor', intervalMs: 1000 };
  it('refuses counts, prefixes and intervals it cannot run', () => {
    assert.throws(() => new DeviceSimulator(registry, { ...base, count: 0 }), /count/);
    assert.throws(() => new DeviceSimulator(registry, { ...base, count: 1001 }), /count/);
    assert.throws(() => new DeviceSimulator(registry, { ...base, idPrefix: 'a/b' }), /valid device ids/);
    assert.throws(() => new DeviceSimulator(registry, { ...base, intervalMs: 10 }), /interval/);
    assert.deepEqual(new DeviceSimulator(registry, base).stats(), { devices: 0, connected: 0, commands: 0 });
  });
});
