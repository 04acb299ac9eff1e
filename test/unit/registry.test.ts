import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry, RegistryError } from '../../nodes/lib/registry/registry';
import { tempDir } from '../support/servers';

const SECRET = 'unit-test-registry-secret-0123456789abcdef';

describe('device registry', () => {
  let dir: ReturnType<typeof tempDir>;
  let file: string;
  let clock: number;
  let reg: Registry;
  const open = (): Registry =>
    new Registry(new FileDeviceStore(file), SECRET, { now: () => clock, rotationGraceMs: 60_000 });

  beforeEach(() => {
    dir = tempDir('registry');
    file = join(dir.path, 'registry.json');
    clock = 1_700_000_000_000;
    reg = open();
    reg.putType({ name: 'thermo', schema: { type: 'object' }, commands: { reboot: { timeoutMs: 5000 } } });
  });
  afterEach(() => {
    reg.close();
    dir.remove();
  });

  it('creates a device with a 256-bit token that verifies, and refuses wrong and unknown alike', () => {
    const { device, token } = reg.createDevice({ id: 'dev-1', type: 'thermo', name: 'Kitchen' });
    assert.match(token, /^iotbd_[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token.slice(6), 'base64url').length, 32);
    assert.deepEqual(device, {
      id: 'dev-1',
      type: 'thermo',
      name: 'Kitchen',
      enabled: true,
      createdAt: clock,
    });
    const ok = reg.verifyToken('dev-1', token);
    assert.ok(ok.ok);
    assert.deepEqual(ok.device, device);
    assert.equal(reg.isCredentialLive('dev-1', ok.credential), true);
    assert.equal(reg.verifyToken('dev-1', Buffer.from(token)).ok, true);
    assert.deepEqual(reg.verifyToken('dev-1', token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')), {
      ok: false,
      reason: 'bad_token',
    });
    assert.deepEqual(reg.verifyToken('dev-1', ''), { ok: false, reason: 'bad_token' });
    assert.deepEqual(reg.verifyToken('nobody', token), { ok: false, reason: 'unknown_device' });
    const byToken = reg.authenticateToken(token);
    assert.equal(byToken.ok && byToken.device, device);
    assert.deepEqual(reg.authenticateToken('iotbd_nope'), { ok: false, reason: 'unknown_device' });
  });

  it('never stores a token: only keyed hashes reach the disk', () => {
    const { token } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    const { token: rotated } = reg.rotateToken('dev-1');
    const { key } = reg.createApiKey('ops');
    reg.close();
    reg = open();
    for (const f of readdirSync(dir.path)) {
      const text = readFileSync(join(dir.path, f), 'utf8');
      for (const secret of [token, rotated, key, token.slice(6), SECRET])
        assert.equal(text.includes(secret), false, `${f} holds a secret`);
    }
  });

  it('refuses a disabled device only once its token is proven, and lets it back in when enabled', () => {
    const events: string[] = [];
    reg.on('disabled', (id) => events.push(`disabled ${id}`));
    reg.on('enabled', (id) => events.push(`enabled ${id}`));
    const { token } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    reg.setEnabled('dev-1', false);
    assert.deepEqual(reg.verifyToken('dev-1', token), { ok: false, reason: 'disabled' });
    assert.deepEqual(reg.verifyToken('dev-1', 'iotbd_wrong'), { ok: false, reason: 'bad_token' });
    reg.setEnabled('dev-1', true);
    assert.equal(reg.verifyToken('dev-1', token).ok, true);
    assert.deepEqual(events, ['disabled dev-1', 'enabled dev-1']);
  });

  it('revokes every token of a device and emits revoked; a rotation issues a working one again', () => {
    const revoked: string[] = [];
    reg.on('revoked', (id: string) => revoked.push(id));
    const { token } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    reg.revokeTokens('dev-1');
    assert.deepEqual(reg.verifyToken('dev-1', token), { ok: false, reason: 'bad_token' });
    assert.deepEqual(reg.authenticateToken(token), { ok: false, reason: 'unknown_device' });
    assert.deepEqual(reg.credentialInfo('dev-1'), []);
    assert.deepEqual(revoked, ['dev-1']);
    const { token: fresh } = reg.rotateToken('dev-1');
    assert.equal(reg.verifyToken('dev-1', fresh).ok, true);
  });

  it('rotates without a gap: both tokens verify during the grace period, only the new one after', () => {
    const { token: t1 } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    const r = reg.rotateToken('dev-1', 10_000);
    assert.equal(r.previousExpiresAt, clock + 10_000);
    assert.equal(reg.verifyToken('dev-1', t1).ok, true);
    assert.equal(reg.verifyToken('dev-1', r.token).ok, true);
    clock += 10_000;
    assert.deepEqual(reg.verifyToken('dev-1', t1), { ok: false, reason: 'bad_token' });
    assert.equal(reg.verifyToken('dev-1', r.token).ok, true);
  });

  it('keeps at most two tokens: a second rotation drops the oldest at once', () => {
    const { token: t1 } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    const { token: t2 } = reg.rotateToken('dev-1');
    const { token: t3 } = reg.rotateToken('dev-1');
    assert.equal(reg.verifyToken('dev-1', t1).ok, false);
    assert.equal(reg.verifyToken('dev-1', t2).ok, true);
    assert.equal(reg.verifyToken('dev-1', t3).ok, true);
    assert.equal(reg.credentialInfo('dev-1').length, 2);
    const { token: t4 } = reg.rotateToken('dev-1', 0);
    assert.equal(reg.verifyToken('dev-1', t3).ok, false);
    assert.equal(reg.verifyToken('dev-1', t4).ok, true);
  });

  it('survives a restart: devices, types, tokens, rotation state and API keys come back from disk', () => {
    const { token: t1 } = reg.createDevice({ id: 'dev-1', type: 'thermo', meta: { floor: 2 } });
    const { token: t2 } = reg.rotateToken('dev-1', 30_000);
    reg.createDevice({ id: 'dev-2', type: 'thermo' });
    reg.removeDevice('dev-2');
    const { key } = reg.createApiKey('ops');
    reg.close();
    reg = open();
    assert.deepEqual(reg.getDevice('dev-1')?.meta, { floor: 2 });
    assert.equal(reg.getDevice('dev-2'), undefined);
    assert.equal(reg.verifyToken('dev-1', t1).ok, true);
    assert.equal(reg.verifyToken('dev-1', t2).ok, true);
    assert.deepEqual(reg.getType('thermo')?.commands, { reboot: { timeoutMs: 5000 } });
    assert.equal(typeof reg.verifyApiKey(key), 'string');
  });

  it('replays the journal after a crash and ignores a torn last line', () => {
    const { token } = reg.createDevice({ id: 'dev-1', type: 'thermo' });
    const journalText = readFileSync(`${file}.journal`, 'utf8'); // the change, not yet compacted
    assert.match(journalText, /"op":"putDevice"/);
    reg.close();
    // The state a crash mid-append leaves: a snapshot without the device, its journal line, a torn tail.
    const crashDir = tempDir('registry-crash');
    try {
      const crashFile = join(crashDir.path, 'registry.json');
      const snap = JSON.parse(readFileSync(file, 'utf8'));
      snap.devices = [];
      appendFileSync(crashFile, JSON.stringify(snap));
      appendFileSync(`${crashFile}.journal`, journalText + '{"op":"putDevice","device":{"id":"torn');
      const recovered = new Registry(new FileDeviceStore(crashFile), SECRET, { now: () => clock });
      try {
        assert.equal(recovered.verifyToken('dev-1', token).ok, true);
        assert.equal(recovered.size, 1);
      } finally {
        recovered.close();
      }
    } finally {
      crashDir.remove();
    }
    reg = open();
  });

  it('allows one writer per file', () => {
    assert.throws(() => open(), /one writer per registry file/);
  });

  it('refuses bad input with specific errors', () => {
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof RegistryError);
        return `${err.code}: ${err.message}`;
      }
      return 'no error';
    };
    for (const id of ['a/b', 'a+b', 'a#', 'a b', 'a\u0000b', '', '-x', 'x'.repeat(129)])
      assert.match(
        code(() => reg.createDevice({ id, type: 'thermo' })),
        /^INVALID: device id/,
      );
    assert.match(
      code(() => reg.createDevice({ id: 'd', type: 'nope' })),
      /^INVALID: device type "nope" does not exist/,
    );
    reg.createDevice({ id: 'd', type: 'thermo' });
    assert.match(
      code(() => reg.createDevice({ id: 'd', type: 'thermo' })),
      /^CONFLICT/,
    );
    assert.match(
      code(() => reg.rotateToken('zz')),
      /^NOT_FOUND/,
    );
    assert.match(
      code(() => reg.createDevice({ id: 'e', type: 'thermo', meta: [] as any })),
      /^INVALID: meta/,
    );
    assert.match(
      code(() => reg.putType({ name: 'bad', schema: { type: 'nonsense' } })),
      /^INVALID: type bad: telemetry schema does not compile/,
    );
    assert.match(
      code(() => reg.putType({ name: 'bad', commands: { go: { timeoutMs: -1 } } })),
      /timeoutMs must be a positive integer/,
    );
    assert.match(
      code(() => reg.putType({ name: 'a/b' })),
      /^INVALID: device type name/,
    );
    assert.match(
      code(() => reg.deleteType('thermo')),
      /^CONFLICT: device type thermo is used by device d/,
    );
    const generated = reg.createDevice({ type: 'thermo' });
    assert.match(generated.device.id, /^d-[0-9a-f]{16}$/);
  });

  it('manages operator API keys: verify, list without hashes, revoke', () => {
    const { id, key } = reg.createApiKey('ops');
    assert.match(key, /^iotbk_/);
    assert.equal(reg.verifyApiKey(key), id);
    assert.equal(reg.verifyApiKey(key + 'x'), undefined);
    assert.deepEqual(reg.listApiKeys(), [{ id, name: 'ops', createdAt: clock }]);
    reg.revokeApiKey(id);
    assert.equal(reg.verifyApiKey(key), undefined);
  });

  it('lets a device register itself once with its type provisioning key and an allowed id', () => {
    const { key } = reg.setProvisioning('thermo', ['factory-*', 'lab-1']);
    const a = reg.registerSelf({ type: 'thermo', key, id: 'factory-0001' });
    assert.equal(reg.verifyToken('factory-0001', a.token).ok, true);
    assert.equal(reg.registerSelf({ type: 'thermo', key, id: 'lab-1' }).device.id, 'lab-1');
    assert.throws(() => reg.registerSelf({ type: 'thermo', key, id: 'factory-0001' }), { code: 'CONFLICT' });
    assert.throws(() => reg.registerSelf({ type: 'thermo', key, id: 'lab-2' }), { code: 'FORBIDDEN' });
    assert.throws(() => reg.registerSelf({ type: 'thermo', key: key + 'x', id: 'factory-0002' }), {
      code: 'FORBIDDEN',
    });
    assert.throws(() => reg.registerSelf({ type: 'other', key, id: 'factory-0002' }), { code: 'FORBIDDEN' });
  });
});
