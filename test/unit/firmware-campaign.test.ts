import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { Artifact } from '../../nodes/lib/firmware/artifact-store';
import {
  CampaignEngine,
  isFinal,
  type CampaignSpec,
  type CampaignTransition,
  type DeviceState,
  type FirmwareOffer,
} from '../../nodes/lib/firmware/campaign';
import { FileCampaignStore } from '../../nodes/lib/firmware/campaign-store';
import { FirmwareError } from '../../nodes/lib/firmware/errors';
import { MemoryTwinStore } from '../../nodes/lib/twin/store';
import { TwinService } from '../../nodes/lib/twin/twin-service';
import { FakeClock } from '../support/fake-clock';
import { tempDir } from '../support/servers';

/** The real twin service, counting the calls of patchDesired: "notified exactly once" is asserted on them. */
class CountingTwins extends TwinService {
  readonly patches = new Map<string, unknown[]>();
  override patchDesired(deviceId: string, patch: unknown, expectedVersion?: number) {
    this.patches.set(deviceId, [...(this.patches.get(deviceId) ?? []), patch]);
    return super.patchDesired(deviceId, patch, expectedVersion);
  }
}

const ARTIFACT: Artifact = {
  type: 'lamp',
  version: '2.0.0',
  size: 1000,
  sha256: 'a'.repeat(64),
  signature: 'sig',
  notes: '',
  uploadedAt: 0,
};

interface Rig {
  engine: CampaignEngine;
  twins: CountingTwins;
  clock: FakeClock;
  file: string;
  transitions: CampaignTransition[];
  restart(): void;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** `unknownToTwins`: registered devices the twin service does not know (it refuses to patch them). */
function rig(deviceCount: number, types: Record<string, string> = {}, unknownToTwins: string[] = []): Rig {
  const dir = tempDir('campaign');
  const file = join(dir.path, 'campaigns.jsonl');
  const clock = new FakeClock();
  const devices = Array.from({ length: deviceCount }, (_, i) => ({
    id: `lamp-${String(i).padStart(3, '0')}`,
    type: 'lamp',
    meta: { site: i % 2 ? 'north' : 'south' },
  }));
  for (const [id, type] of Object.entries(types)) devices.push({ id, type, meta: { site: 'south' } });
  const twins = new CountingTwins({
    store: new MemoryTwinStore(),
    directory: {
      getDevice: (id) => (unknownToTwins.includes(id) ? undefined : devices.find((d) => d.id === id)),
    },
    clock,
  });
  const transitions: CampaignTransition[] = [];
  const make = (): CampaignEngine => {
    const engine = new CampaignEngine({
      store: new FileCampaignStore(file),
      twins,
      devices: {
        listDevices: ({ type }) => devices.filter((d) => d.type === type),
        getDevice: (id) => devices.find((d) => d.id === id),
      },
      artifacts: { get: (type, version) => (type === 'lamp' && version === '2.0.0' ? ARTIFACT : undefined) },
      downloadUrl: (a) => `/api/firmware/${a.type}/${a.version}/download`,
      clock,
    });
    engine.on('device', (t) => transitions.push(t));
    engine.start();
    return engine;
  };
  const r: Rig = {
    engine: make(),
    twins,
    clock,
    file,
    transitions,
    restart() {
      r.engine.close();
      r.engine = make();
    },
  };
  cleanups.push(() => {
    r.engine.close();
    dir.remove();
  });
  return r;
}

const SPEC: CampaignSpec = {
  type: 'lamp',
  version: '2.0.0',
  waves: [10, 50, 100],
  soakS: 60,
  timeoutS: 300,
  failureThreshold: 0.1,
  maxConcurrent: 1000,
};

/** Device ids whose twin got the campaign's offer. */
function notified(r: Rig): string[] {
  return [...r.twins.patches.keys()];
}

function offer(r: Rig, id: string): FirmwareOffer {
  return r.twins.get(id)!.desired.state.firmware as FirmwareOffer;
}

function statesOf(r: Rig, id: string): Record<DeviceState, number> {
  const counts = {} as Record<DeviceState, number>;
  for (const d of r.engine.get(id)!.devices) counts[d.state] = (counts[d.state] ?? 0) + 1;
  return counts;
}

/** Every notified device that has not finished reports the new version. */
function succeedAll(r: Rig, except: Set<string> = new Set()): void {
  for (const id of notified(r))
    if (!except.has(id) && r.twins.get(id)?.desired.state.firmware)
      r.twins.mergeReported(id, { firmware: { version: '2.0.0', state: 'idle' } });
}

describe('firmware campaign engine', () => {
  it('runs the waves in order with the soak time between them, and completes with every device SUCCEEDED', () => {
    const r = rig(100);
    const c = r.engine.create(SPEC);
    assert.equal(notified(r).length, 10, 'wave 0 is 10 % of 100 devices');
    const first = offer(r, notified(r)[0]);
    assert.deepEqual(first, {
      version: '2.0.0',
      url: '/api/firmware/lamp/2.0.0/download',
      size: 1000,
      sha256: 'a'.repeat(64),
      signature: 'sig',
      campaign: c.id,
    });
    succeedAll(r);
    assert.equal(r.engine.get(c.id)!.status, 'SOAKING');
    r.clock.advance(59_000);
    assert.equal(notified(r).length, 10, 'nobody new during the soak');
    r.clock.advance(1000);
    assert.equal(r.engine.get(c.id)!.status, 'RUNNING');
    assert.equal(notified(r).length, 50, 'wave 1 brings the total to 50 %');
    succeedAll(r);
    r.clock.advance(60_000);
    assert.equal(notified(r).length, 100);
    succeedAll(r);
    assert.equal(r.engine.get(c.id)!.status, 'COMPLETED');
    assert.deepEqual(statesOf(r, c.id), { SUCCEEDED: 100 });
    for (const ps of r.twins.patches.values()) assert.equal(ps.length, 1, 'each device is notified once');
  });

  it('follows reported progress forwards only, and ends each device in exactly one final state', () => {
    const r = rig(10);
    const c = r.engine.create({ ...SPEC, waves: [100] });
    const [a, b] = notified(r);
    r.twins.mergeReported(a, { firmware: { state: 'installing', campaign: c.id } });
    r.twins.mergeReported(a, { firmware: { state: 'downloading', campaign: c.id } });
    r.twins.mergeReported(b, { firmware: { state: 'downloading', campaign: 'another-campaign' } });
    const dev = (id: string) => r.engine.get(c.id)!.devices.find((d) => d.id === id)!;
    assert.equal(dev(a).state, 'INSTALLING', 'a late "downloading" does not move the device back');
    assert.equal(dev(b).state, 'NOTIFIED', "another campaign's progress is not this one's");
    r.twins.mergeReported(a, { firmware: { state: 'failed', campaign: c.id, error: 'flash write error' } });
    assert.equal(dev(a).state, 'FAILED');
    assert.equal(dev(a).reason, 'flash write error');
    r.twins.mergeReported(a, { firmware: { version: '2.0.0' } });
    assert.equal(dev(a).state, 'FAILED', 'a final state is final');
    const finals = r.transitions.filter((t) => t.deviceId === a && isFinal(t.to));
    assert.equal(finals.length, 1);
  });

  it('pauses as soon as a wave crosses the failure threshold; no device of a later wave is notified', () => {
    const r = rig(100);
    const c = r.engine.create(SPEC); // wave 0: 10 devices, threshold 10 %: the second failure pauses
    const wave0 = notified(r);
    r.twins.mergeReported(wave0[0], { firmware: { state: 'failed', campaign: c.id } });
    assert.equal(r.engine.get(c.id)!.status, 'RUNNING', '1 of 10 is not more than 10 %');
    r.twins.mergeReported(wave0[1], { firmware: { state: 'failed', campaign: c.id } });
    assert.equal(r.engine.get(c.id)!.status, 'PAUSED');
    assert.match(r.engine.get(c.id)!.reason!, /2 of 10 devices failed/);
    succeedAll(r, new Set(wave0.slice(0, 2)));
    r.clock.advance(3_600_000);
    assert.equal(r.engine.get(c.id)!.status, 'PAUSED', 'a pause waits for the operator');
    assert.equal(notified(r).length, 10, 'no later-wave device was notified');
    assert.deepEqual(statesOf(r, c.id), { FAILED: 2, SUCCEEDED: 8, PENDING: 90 });

    r.engine.resume(c.id);
    assert.equal(r.engine.get(c.id)!.status, 'SOAKING', 'the resumed wave is done, so the soak starts');
    r.clock.advance(60_000);
    assert.equal(notified(r).length, 50);
    assert.throws(
      () => r.engine.resume(c.id),
      (e: FirmwareError) => e.code === 'CONFLICT',
    );
  });

  it('counts a device that never reports as TIMED_OUT, and timeouts pause like failures', () => {
    const r = rig(20);
    const c = r.engine.create({ ...SPEC, waves: [50, 100], failureThreshold: 0 });
    const wave0 = notified(r);
    succeedAll(r, new Set([wave0[0]]));
    r.clock.advance(299_999);
    assert.equal(r.engine.get(c.id)!.status, 'RUNNING');
    r.clock.advance(1);
    const d = r.engine.get(c.id)!.devices.find((x) => x.id === wave0[0])!;
    assert.equal(d.state, 'TIMED_OUT');
    assert.equal(r.engine.get(c.id)!.status, 'PAUSED');
  });

  it('abort cancels what is not final and withdraws the offer from devices in flight', () => {
    const r = rig(100);
    const c = r.engine.create({ ...SPEC, maxConcurrent: 4 });
    const inFlight = notified(r);
    assert.equal(inFlight.length, 4, 'at most maxConcurrent devices in flight');
    r.twins.mergeReported(inFlight[0], { firmware: { version: '2.0.0' } });
    assert.equal(notified(r).length, 5, 'a finished device frees a slot');
    r.engine.abort(c.id);
    assert.equal(r.engine.get(c.id)!.status, 'ABORTED');
    assert.deepEqual(statesOf(r, c.id), { SUCCEEDED: 1, CANCELED: 99 });
    for (const id of notified(r).slice(1))
      assert.equal(r.twins.get(id)!.desired.state.firmware, undefined, `offer withdrawn from ${id}`);
    r.twins.mergeReported(inFlight[1], { firmware: { version: '2.0.0' } });
    assert.deepEqual(statesOf(r, c.id), { SUCCEEDED: 1, CANCELED: 99 }, 'nothing moves after the abort');
    assert.throws(
      () => r.engine.abort(c.id),
      (e: FirmwareError) => e.code === 'CONFLICT',
    );
  });

  it('skips devices that already run the version, and targets by filter or by explicit list', () => {
    const r = rig(10, { 'other-1': 'meter' });
    r.twins.mergeReported('lamp-000', { firmware: { version: '2.0.0' } });
    const c = r.engine.create({ ...SPEC, waves: [100], where: { 'meta.site': 'south' } });
    assert.deepEqual(statesOf(r, c.id), { SKIPPED: 1, NOTIFIED: 4 });
    r.engine.abort(c.id);
    assert.throws(
      () => r.engine.create({ ...SPEC, devices: ['lamp-001', 'other-1'] }),
      (e: FirmwareError) => e.code === 'INVALID' && /of type meter/.test(e.reason),
    );
    const c2 = r.engine.create({ ...SPEC, devices: ['lamp-001', 'lamp-003'] });
    assert.equal(r.engine.get(c2.id)!.devices.length, 2);
  });

  it('refuses bad specs with a reason, and a second active campaign for the same type', () => {
    const r = rig(5);
    const bad: [CampaignSpec, RegExp][] = [
      [{ ...SPEC, version: '9.9.9' }, /no firmware 9.9.9/],
      [{ ...SPEC, waves: [50, 40, 100] }, /rising/],
      [{ ...SPEC, waves: [10, 50] }, /last one 100/],
      [{ ...SPEC, failureThreshold: 2 }, /failureThreshold/],
      [{ ...SPEC, where: { site: 'x' } }, /meta\./],
      [{ ...SPEC, where: { 'meta.site': 'nowhere' } }, /matches no device/],
    ];
    for (const [spec, re] of bad)
      assert.throws(
        () => r.engine.create(spec),
        (e: FirmwareError) => re.test(e.reason),
      );
    r.engine.create(SPEC);
    assert.throws(
      () => r.engine.create(SPEC),
      (e: FirmwareError) => e.code === 'CONFLICT',
    );
  });

  it('a device the twin service refuses ends FAILED with the reason, and the campaign goes on', () => {
    const r = rig(3, {}, ['lamp-001']);
    const c = r.engine.create({ ...SPEC, waves: [100], failureThreshold: 0.5 });
    const d = r.engine.get(c.id)!.devices.find((x) => x.id === 'lamp-001')!;
    assert.equal(d.state, 'FAILED');
    assert.match(d.reason!, /not notified: .*lamp-001/);
    succeedAll(r);
    assert.equal(r.engine.get(c.id)!.status, 'COMPLETED');
  });

  it('after a restart it continues where it was, and notifies no device twice', () => {
    const r = rig(100);
    const c = r.engine.create(SPEC);
    succeedAll(r);
    r.clock.advance(60_000); // wave 1 notified: 40 more
    const before = notified(r);
    r.twins.mergeReported(before[20], { firmware: { state: 'installing', campaign: c.id } });
    r.restart();
    assert.deepEqual(notified(r), before);
    const dev = r.engine.get(c.id)!.devices.find((d) => d.id === before[20])!;
    assert.equal(dev.state, 'INSTALLING');
    // A report that arrived while stopped is seen at the start.
    r.engine.close();
    r.twins.mergeReported(before[21], { firmware: { version: '2.0.0' } });
    r.restart();
    assert.equal(r.engine.get(c.id)!.devices.find((d) => d.id === before[21])!.state, 'SUCCEEDED');
    succeedAll(r);
    r.clock.advance(60_000);
    succeedAll(r);
    assert.equal(r.engine.get(c.id)!.status, 'COMPLETED');
    for (const [id, ps] of r.twins.patches) assert.equal(ps.length, 1, `${id} notified once`);
  });

  it('a device made NOTIFIED whose offer never reached its twin (crash between the two) is told at the start', () => {
    const r = rig(10);
    const c = r.engine.create({ ...SPEC, waves: [100], maxConcurrent: 2 });
    r.engine.close();
    // The crash: the next device's NOTIFIED is on disk, the twin patch never happened.
    const pending = r.engine.get(c.id)!.devices.find((d) => d.state === 'PENDING')!;
    appendFileSync(
      r.file,
      JSON.stringify({ t: 'd', c: c.id, d: [{ ...pending, state: 'NOTIFIED', notifiedAt: r.clock.now() }] }) +
        '\n',
    );
    appendFileSync(r.file, '{"t":"d","c":"torn'); // and a torn last line
    r.restart();
    assert.equal(r.twins.patches.get(pending.id)?.length, 1, 'told once, at the start');
    assert.equal(notified(r).length, 3);
    for (const ps of r.twins.patches.values()) assert.equal(ps.length, 1);
  });
});
