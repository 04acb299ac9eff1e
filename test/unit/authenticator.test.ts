import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Authenticator, bearerToken, signBody } from '../../nodes/lib/auth/authenticator';
import { NonceCache } from '../../nodes/lib/auth/nonce-cache';
import { deriveSigningKey } from '../../nodes/lib/registry/credentials';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import type { SecurityEvent } from '../../nodes/lib/security-events';
import { tempDir } from '../support/servers';

const SECRET = 'auth-test-registry-secret-0123456789abcdef';

describe('HTTP/topic authenticator', () => {
  let dir: ReturnType<typeof tempDir>;
  let reg: Registry;
  let clock: number;
  let token: string;
  let events: SecurityEvent[];
  beforeEach(() => {
    dir = tempDir('auth');
    clock = 1_700_000_000_000;
    reg = new Registry(new FileDeviceStore(join(dir.path, 'r.json')), SECRET, { now: () => clock });
    reg.putType({ name: 'thermo' });
    token = reg.createDevice({ id: 'dev-1', type: 'thermo' }).token;
    reg.createDevice({ id: 'dev-2', type: 'thermo' });
    events = [];
    reg.on('security', (e: SecurityEvent) => events.push(e));
  });
  afterEach(() => {
    reg.close();
    dir.remove();
  });

  it('parses bearer headers strictly', () => {
    assert.equal(bearerToken({ authorization: 'Bearer abc' }), 'abc');
    assert.equal(bearerToken({ authorization: 'bearer   abc ' }), 'abc');
    assert.equal(bearerToken({ authorization: 'Basic abc' }), undefined);
    assert.equal(bearerToken({ authorization: 'Bearer a b' }), undefined);
    assert.equal(bearerToken({}), undefined);
  });

  it('bearer: the device token authenticates its own device; unknown, wrong and foreign look the same', () => {
    const a = new Authenticator(reg, { mode: 'bearer' });
    const ok = a.authenticate({ headers: { authorization: `Bearer ${token}` }, deviceId: 'dev-1' });
    assert.equal(ok.ok && ok.device?.id, 'dev-1');
    const wrong = a.authenticate({ headers: { authorization: 'Bearer iotbd_wrong' } });
    const missing = a.authenticate({ headers: {} });
    const foreign = a.authenticate({ headers: { authorization: `Bearer ${token}` }, deviceId: 'dev-2' });
    for (const r of [wrong, missing, foreign])
      assert.deepEqual(r, {
        ok: false,
        status: 401,
        code: 'UNAUTHORIZED',
        reason: 'missing or invalid credentials',
      });
    assert.deepEqual(
      events.map((e) => e.reason),
      ['unknown_device', 'no_credentials', 'device_mismatch'],
    );
    reg.setEnabled('dev-1', false);
    const disabled = a.authenticate({ headers: { authorization: `Bearer ${token}` } });
    assert.equal(!disabled.ok && disabled.status, 403);
  });

  it('signed: accepts a correctly signed body once, refuses the replay, a stale timestamp, a tampered body and a short signature', () => {
    const a = new Authenticator(reg, { mode: 'signed', now: () => clock });
    const key = deriveSigningKey(token);
    const body = '{"t":21.5}';
    const nonce = 'n0nce-0123456789ab';
    const headers = (ts: number, n: string, sig: string) => ({
      'x-iotb-device': 'dev-1',
      'x-iotb-timestamp': String(ts),
      'x-iotb-nonce': n,
      'x-iotb-signature': sig,
    });
    const sig = signBody(key, clock, nonce, body);
    const ok = a.authenticate({ headers: headers(clock, nonce, sig), body, deviceId: 'dev-1' });
    assert.equal(ok.ok && ok.device?.id, 'dev-1');
    const replay = a.authenticate({ headers: headers(clock, nonce, sig), body });
    assert.deepEqual(replay, {
      ok: false,
      status: 401,
      code: 'REPLAYED',
      reason: 'request was already received (replay)',
    });
    const old = clock - 301_000;
    const stale = a.authenticate({
      headers: headers(old, 'n0nce-0123456789ac', signBody(key, old, 'n0nce-0123456789ac', body)),
      body,
    });
    assert.equal(!stale.ok && stale.code, 'STALE');
    const n2 = 'n0nce-0123456789ad';
    const tampered = a.authenticate({
      headers: headers(clock, n2, signBody(key, clock, n2, body)),
      body: '{"t":99}',
    });
    assert.equal(!tampered.ok && tampered.code, 'UNAUTHORIZED');
    for (const s of ['ab', sig.slice(0, 63), `${sig}00`, 'zz'.repeat(32), ''])
      assert.equal(
        a.authenticate({ headers: headers(clock, 'n0nce-0123456789ae', s), body }).ok,
        false,
        `signature "${s}"`,
      );
    // the tampered attempt did not burn its nonce: the genuine request with it still passes
    assert.equal(
      a.authenticate({ headers: headers(clock, n2, signBody(key, clock, n2, body)), body }).ok,
      true,
    );
    const unknown = a.authenticate({
      headers: { ...headers(clock, 'n0nce-0123456789af', sig), 'x-iotb-device': 'ghost' },
      body,
    });
    assert.deepEqual(unknown, {
      ok: false,
      status: 401,
      code: 'UNAUTHORIZED',
      reason: 'missing or invalid credentials',
    });
  });

  it('signed: a rotated token signs during the grace period; a revoked one never', () => {
    const a = new Authenticator(reg, { mode: 'signed', now: () => clock });
    const { token: fresh } = reg.rotateToken('dev-1', 1000);
    const body = 'x';
    for (const [t, n] of [
      [token, 'n0nce-old-0123456789'],
      [fresh, 'n0nce-new-0123456789'],
    ] as const) {
      const h = {
        'x-iotb-device': 'dev-1',
        'x-iotb-timestamp': String(clock),
        'x-iotb-nonce': n,
        'x-iotb-signature': signBody(deriveSigningKey(t), clock, n, body),
      };
      assert.equal(a.authenticate({ headers: h, body }).ok, true);
    }
    reg.revokeTokens('dev-1');
    const n = 'n0nce-rev-0123456789';
    const h = {
      'x-iotb-device': 'dev-1',
      'x-iotb-timestamp': String(clock),
      'x-iotb-nonce': n,
      'x-iotb-signature': signBody(deriveSigningKey(fresh), clock, n, body),
    };
    assert.equal(a.authenticate({ headers: h, body }).ok, false);
  });

  it('apiKey: operator keys authenticate, device tokens do not', () => {
    const a = new Authenticator(reg, { mode: 'apiKey' });
    const { id, key } = reg.createApiKey('ops');
    assert.deepEqual(a.authenticate({ headers: { authorization: `Bearer ${key}` } }), {
      ok: true,
      apiKeyId: id,
    });
    assert.equal(a.authenticate({ headers: { authorization: `Bearer ${token}` } }).ok, false);
  });

  it('topic: trusts the topic device id only for registered, enabled, unrevoked devices, and says which', () => {
    const a = new Authenticator(reg, { mode: 'topic' });
    const ok = a.authenticate({ topic: 'devices/dev-2/telemetry' });
    assert.equal(ok.ok && ok.device?.id, 'dev-2');
    assert.equal(a.authenticate({ topic: 'devices/ghost/telemetry' }).ok, false);
    assert.equal(a.authenticate({ topic: 'other/dev-2/telemetry' }).ok, false);
    assert.equal(a.authenticate({ topic: 'devices/dev+2/telemetry' }).ok, false);
    assert.equal(a.authenticate({ topic: 'devicesX/dev-2/telemetry' }).ok, false);
    assert.equal(a.authenticate({ topic: 'devices//dev-2/telemetry' }).ok, false);
    assert.equal(a.authenticate({ topic: 'devices/dev-2' }).ok, true, 'the id is the level after the prefix');
    const code = (topic: string): string | undefined => {
      const o = a.authenticate({ topic });
      return o.ok ? undefined : o.code;
    };
    assert.equal(code('devices/ghost/telemetry'), 'UNKNOWN_DEVICE');
    reg.setEnabled('dev-2', false);
    assert.equal(code('devices/dev-2/telemetry'), 'DEVICE_DISABLED');
    reg.setEnabled('dev-2', true);
    reg.revokeTokens('dev-2');
    assert.equal(code('devices/dev-2/telemetry'), 'DEVICE_REVOKED');
  });

  it('keeps the nonce cache bounded and forgets nonces after the window', () => {
    let now = 0;
    const c = new NonceCache(1000, 3, () => now);
    assert.equal(c.add('a'), true);
    assert.equal(c.add('a'), false);
    assert.equal(c.add('b'), true);
    assert.equal(c.add('c'), true);
    assert.equal(c.add('d'), false, 'full: refuse rather than forget a live nonce');
    now = 1001;
    assert.equal(c.add('d'), true);
    assert.equal(c.size, 1);
  });
});
