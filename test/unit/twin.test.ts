import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FileTwinStore } from '../../nodes/lib/twin/file-store';
import { applyMergePatch, deltaOf } from '../../nodes/lib/twin/json-doc';
import { MemoryTwinStore } from '../../nodes/lib/twin/store';
import { TwinError, TwinService, type TwinView } from '../../nodes/lib/twin/twin-service';
import { parseWhere, type TwinFacts } from '../../nodes/lib/twin/where';
import { FakeClock } from '../support/fake-clock';
import { MemoryDirectory } from '../support/memory-directory';
import { tempDir } from '../support/servers';

function refusedWith(code: string, reason?: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof TwinError, `expected a TwinError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (reason) assert.match(err.reason, reason);
    return true;
  };
}

describe('JSON merge patch (RFC 7386)', () => {
  // The examples of RFC 7386 appendix A that have an object target and an object patch.
  const cases: [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [{ a: 'foo' }, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, result] of cases)
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => {
      const before = JSON.stringify(target);
      assert.deepEqual(applyMergePatch(target, patch), result);
      assert.equal(JSON.stringify(target), before, 'the target is not changed in place');
    });

  it('returns the same object when nothing changes', () => {
    const t = { a: { b: [1, 2] }, c: 1 };
    assert.equal(applyMergePatch(t, { a: { b: [1, 2] }, d: null }), t);
  });

  it('delta holds only the differing leaves', () => {
    assert.deepEqual(
      deltaOf(
        { interval: 30, firmware: { version: '2.4.1', url: 'u' }, led: true },
        { interval: 10, firmware: { version: '2.4.0', url: 'u' }, led: true, extra: 1 },
      ),
      { interval: 30, firmware: { version: '2.4.1' } },
    );
  });
});

describe('twin service', () => {
  let clock: FakeClock;
  let dir: MemoryDirectory;
  let twins: TwinService;
  const T0 = Date.parse('2026-01-01T00:00:00Z');

  beforeEach(() => {
    clock = new FakeClock(T0);
    dir = new MemoryDirectory();
    dir.addDevice('d1', 'thermostat');
    dir.addDevice('d2', 'thermostat');
    dir.addDevice('lamp', 'lamp');
    twins = new TwinService({ store: new MemoryTwinStore(), directory: dir, clock });
  });

  it('a registered device starts with empty documents at version 0; an unknown one has no twin', () => {
    assert.deepEqual(twins.get('d1'), {
      deviceId: 'd1',
      desired: { state: {}, version: 0, updatedAt: {} },
      reported: { state: {}, version: 0, updatedAt: {} },
      delta: {},
    });
    assert.equal(twins.get('nope'), undefined);
    assert.throws(() => twins.patchDesired('nope', { a: 1 }), refusedWith('UNKNOWN_DEVICE', /nope/));
    assert.throws(() => twins.mergeReported('nope', { a: 1 }), refusedWith('UNKNOWN_DEVICE'));
  });

  it('versions and per-key timestamps follow the changes; delta converges', () => {
    const events: string[] = [];
    twins.on('desired', (id, v) => events.push(`desired ${id} v${v.desired.version}`));
    twins.on('reported', (id, v, patch) =>
      events.push(`reported ${id} v${v.reported.version} ${JSON.stringify(patch)}`),
    );
    let v = twins.patchDesired('d1', { interval: 30, mode: 'eco' });
    assert.equal(v.desired.version, 1);
    assert.deepEqual(v.desired.updatedAt, { interval: T0, mode: T0 });
    assert.deepEqual(v.delta, { interval: 30, mode: 'eco' });

    clock.advance(1000);
    v = twins.patchDesired('d1', { interval: 60, mode: null });
    assert.deepEqual(v.desired.state, { interval: 60 });
    assert.deepEqual(v.desired.updatedAt, { interval: T0 + 1000 }, 'a removed key loses its timestamp');
    assert.equal(v.desired.version, 2);

    clock.advance(1000);
    v = twins.mergeReported('d1', { interval: 10, rssi: -70 });
    assert.deepEqual(v.delta, { interval: 60 });
    v = twins.mergeReported('d1', { interval: 60 });
    assert.deepEqual(v.delta, {});
    assert.equal(v.reported.version, 2);
    assert.deepEqual(v.reported.updatedAt, { interval: T0 + 2000, rssi: T0 + 2000 });

    // A patch that changes nothing bumps no version and emits nothing (devices re-report on every connect).
    const same = twins.mergeReported('d1', { interval: 60, rssi: -70 });
    assert.equal(same.reported.version, 2);
    assert.deepEqual(events, [
      'desired d1 v1',
      'desired d1 v2',
      'reported d1 v1 {"interval":10,"rssi":-70}',
      'reported d1 v2 {"interval":60}',
    ]);
  });

  it('a view taken earlier keeps its state after later changes', () => {
    const first = twins.patchDesired('d1', { a: { b: 1 } });
    twins.patchDesired('d1', { a: { b: 2 } });
    assert.deepEqual(first.desired.state, { a: { b: 1 } });
    assert.equal(first.desired.version, 1);
  });

  it('a patch based on a stale version is refused with VERSION_CONFLICT and changes nothing', () => {
    twins.patchDesired('d1', { interval: 30 });
    twins.patchDesired('d1', { interval: 40 }, 1);
    assert.throws(
      () => twins.patchDesired('d1', { interval: 50 }, 1),
      refusedWith('VERSION_CONFLICT', /at version 2, the patch was based on version 1/),
    );
    assert.deepEqual(twins.get('d1')!.desired.state, { interval: 40 });
    assert.throws(() => twins.patchDesired('d1', { a: 1 }, -1), refusedWith('INVALID', /expected version/));
    assert.throws(() => twins.patchDesired('d1', { a: 1 }, 1.5), refusedWith('INVALID', /expected version/));
  });

  it('refuses what is not a JSON object patch, with the reason', () => {
    for (const bad of [null, [1], 'x', 3])
      assert.throws(() => twins.patchDesired('d1', bad), refusedWith('INVALID', /JSON object/));
    assert.throws(() => twins.patchDesired('d1', { a: () => 1 }), refusedWith('INVALID', /a is a function/));
    assert.throws(
      () => twins.patchDesired('d1', { a: { b: NaN } }),
      refusedWith('INVALID', /a\.b is not a finite number/),
    );
    assert.throws(
      () => twins.patchDesired('d1', { a: new Date() }),
      refusedWith('INVALID', /not a plain JSON object/),
    );
    assert.throws(
      () => twins.mergeReported('d1', JSON.parse('{"__proto__":{"polluted":1}}')),
      refusedWith('INVALID', /__proto__/),
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('refuses documents over the size and depth limits', () => {
    const small = new TwinService({
      store: new MemoryTwinStore(),
      directory: dir,
      clock,
      limits: { maxDocBytes: 100, maxDepth: 3 },
    });
    small.patchDesired('d1', { a: 'x'.repeat(50) });
    assert.throws(
      () => small.patchDesired('d1', { b: 'y'.repeat(50) }),
      refusedWith('TOO_LARGE', /would be 1\d\d bytes of JSON, the limit is 100/),
    );
    assert.deepEqual(small.get('d1')!.desired.state, { a: 'x'.repeat(50) }, 'the refused patch left nothing');
    small.patchDesired('d1', { a: null, b: 'y'.repeat(50) }); // replacing fits
    assert.throws(
      () => small.mergeReported('d1', { a: { b: { c: { d: 1 } } } }),
      refusedWith('INVALID', /a\.b\.c nests deeper than 3 levels/),
    );
    small.mergeReported('d1', { a: { b: { c: 1 } } });
  });

  it('lists by type and by where', () => {
    twins.patchDesired('d1', { firmware: { version: '2.4.1' }, interval: 30 });
    twins.mergeReported('d1', { firmware: { version: '2.4.0' }, interval: 30 });
    twins.patchDesired('d2', { firmware: { version: '2.4.1' } });
    twins.mergeReported('d2', { firmware: { version: '2.4.1' } });
    twins.mergeReported('lamp', { on: true });
    const ids = (l: TwinView[]): string[] => l.map((t) => t.deviceId).sort();
    assert.deepEqual(ids(twins.list()), ['d1', 'd2', 'lamp']);
    assert.deepEqual(ids(twins.list({ type: 'thermostat' })), ['d1', 'd2']);
    assert.deepEqual(ids(twins.list({ where: 'reported.firmware.version!=desired.firmware.version' })), [
      'd1',
    ]);
    assert.deepEqual(ids(twins.list({ where: 'delta' })), ['d1']);
    assert.deepEqual(ids(twins.list({ type: 'thermostat', where: '!delta' })), ['d2']);
    assert.deepEqual(ids(twins.list({ where: 'reported.firmware.version == 2.4.1' })), ['d2']);
    assert.deepEqual(ids(twins.list({ where: 'reported.on == true and type == lamp' })), ['lamp']);
    assert.deepEqual(ids(twins.list({ where: 'version.reported >= 1 && desired.interval < 40' })), ['d1']);
    assert.throws(
      () => twins.list({ where: 'reported.a ==' }),
      refusedWith('INVALID', /where: .*value was expected/),
    );
    assert.throws(() => twins.list({ where: 'a b' }), refusedWith('INVALID', /expected "and"/));
  });

  it('forgets the twin of a device removed from the directory', () => {
    twins.patchDesired('d1', { a: 1 });
    const removed: string[] = [];
    twins.on('removed', (id) => removed.push(id));
    dir.devices.delete('d1');
    dir.emit('removed', 'd1');
    assert.deepEqual(removed, ['d1']);
    assert.equal(twins.size, 0);
  });
});

describe('where expressions', () => {
  const facts: TwinFacts = {
    deviceId: 'd1',
    type: 't',
    desired: { s: 'a b', n: 3 },
    reported: { s: 'a b' },
    delta: { n: 3 },
    desiredVersion: 2,
    reportedVersion: 1,
  };
  it('quoted strings, numbers and missing values', () => {
    assert.equal(parseWhere('desired.s == "a b"')(facts), true);
    assert.equal(parseWhere("reported.s == 'a b'")(facts), true);
    assert.equal(parseWhere('reported.n != 3')(facts), true, 'a missing value differs from any value');
    assert.equal(parseWhere('reported.n < 3')(facts), false, 'a missing value compares false');
    assert.equal(parseWhere('delta.n == desired.n and deviceId == d1')(facts), true);
  });
});

describe('twin file store', () => {
  let dir: ReturnType<typeof tempDir>;
  let file: string;
  let clock: FakeClock;
  let directory: MemoryDirectory;
  const open = (opts: { compactBytes?: number } = {}): TwinService =>
    new TwinService({ store: new FileTwinStore(file, { clock, ...opts }), directory, clock });

  beforeEach(() => {
    dir = tempDir('twin');
    file = join(dir.path, 'twins.json');
    clock = new FakeClock();
    directory = new MemoryDirectory();
    for (let i = 0; i < 5; i++) directory.addDevice(`d${i}`);
  });
  afterEach(() => dir.remove());

  it('a change is on disk when the call returns: kill -9 right after loses nothing', () => {
    // A separate process makes the changes and kills itself with SIGKILL: no close, no flush, no timers.
    const lib = join(__dirname, '..', '..', 'nodes', 'lib');
    const script = `
      const { TwinService } = require(${JSON.stringify(join(lib, 'twin', 'twin-service.ts'))});
      const { FileTwinStore } = require(${JSON.stringify(join(lib, 'twin', 'file-store.ts'))});
      const directory = { getDevice: (id) => ({ id, type: 't' }) };
      const twins = new TwinService({ store: new FileTwinStore(${JSON.stringify(file)}, { flushMs: 60000 }), directory });
      twins.patchDesired('d1', { interval: 30 });
      twins.mergeReported('d1', { interval: 10 });
      twins.mergeReported('d2', { x: 1 });
      process.kill(process.pid, 'SIGKILL');`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    const b = open();
    assert.deepEqual(b.get('d1')!.desired.state, { interval: 30 });
    assert.deepEqual(b.get('d1')!.reported.state, { interval: 10 });
    assert.equal(b.get('d2')!.reported.version, 1);
    b.close();
  });

  it('groups the fsync of device reports and flushes on close', () => {
    const a = open();
    a.mergeReported('d1', { a: 1 });
    assert.equal(clock.pending, 1, 'one grouped flush is scheduled');
    a.mergeReported('d2', { a: 1 });
    assert.equal(clock.pending, 1, 'a second report joins the same flush');
    clock.advance(200);
    assert.equal(clock.pending, 0);
    a.patchDesired('d1', { a: 2 });
    assert.equal(clock.pending, 0, 'a desired change is fsynced at once');
    a.close();
    const b = open();
    assert.deepEqual(b.get('d1')!.delta, { a: 2 });
    b.close();
  });

  it('a batch of desired changes is fsynced once, when the batch returns', () => {
    const a = open();
    // The store's own record of whether its journal has writes not yet fsynced.
    const synced = (): boolean => !(a as unknown as { store: { unsynced: boolean } }).store.unsynced;
    a.batch(() => {
      for (let i = 0; i < 5; i++) a.patchDesired(`d${i}`, { wave: 1 });
      assert.equal(synced(), false, 'inside the batch the changes wait for the fsync');
    });
    assert.equal(synced(), true, 'durable when the batch returns');
    assert.equal(clock.pending, 0, 'no flush left scheduled');
    a.close();
    const b = open();
    assert.equal(b.list({ where: 'desired.wave == 1' }).length, 5);
    b.close();
  });

  it('compacts the journal into the snapshot and ignores a torn last line', () => {
    const a = open({ compactBytes: 500 });
    for (let i = 0; i < 50; i++) a.mergeReported(`d${i % 5}`, { n: i });
    assert.ok(readFileSync(`${file}.journal`).length < 2000, 'the journal was compacted on the way');
    a.close();
    appendFileSync(`${file}.journal`, '{"deviceId":"d1","desired":{"sta');
    const b = open();
    assert.deepEqual(b.get('d4')!.reported.state, { n: 49 });
    assert.equal(b.get('d4')!.reported.version, 10);
    b.close();
  });

  it('refuses a corrupt journal line that is not the last, naming the file', () => {
    const a = open();
    a.close();
    writeFileSync(`${file}.journal`, 'garbage\n{"deviceId":"d1","removed":true}\n');
    assert.throws(() => open(), /cannot load twins .*twins\.json: journal line 1 is corrupt/);
  });
});
