import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import { CommandDispatcher, type DispatcherOptions } from '../../nodes/lib/commands/dispatcher';
import { MqttDeviceLink } from '../../nodes/lib/commands/mqtt-link';
import { isFinal } from '../../nodes/lib/commands/states';
import { DeviceClient, type DeviceClientOptions } from '../../nodes/lib/device-client';
import { RejectionError } from '../../nodes/lib/rejection';
import { finalOf, logFile, online, states, submitBurst } from '../support/commands';
import { thermostatDirectory, type MemoryDirectory } from '../support/memory-directory';
import { startMosquitto, tempDir, type Server } from '../support/servers';

describe('command dispatch over Mosquitto with reference devices', () => {
  let broker: Server;
  const cleanups: (() => Promise<void> | void)[] = [];

  before(async () => {
    broker = await startMosquitto();
  });
  after(() => broker.stop());
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  let seq = 0;
  async function backend(
    directory: MemoryDirectory,
    opts: Partial<DispatcherOptions> & { dir?: string } = {},
  ): Promise<{ d: CommandDispatcher; link: MqttDeviceLink; dir: string }> {
    const tmp = opts.dir ? undefined : tempDir('commands');
    const dir = opts.dir ?? tmp!.path;
    const link = new MqttDeviceLink({
      url: broker.url,
      clientId: `backend-${process.pid}-${++seq}`,
      protocol: 'auto',
    });
    await link.ready();
    const d = new CommandDispatcher({
      link,
      directory,
      logFile: logFile(dir),
      timeoutMs: 5000,
      ttlMs: 60_000,
      queueBound: 100,
      ratePerSecond: 50,
      ...opts,
    });
    d.setMaxListeners(0);
    cleanups.push(async () => {
      d.close();
      await link.end();
      tmp?.remove();
    });
    return { d, link, dir };
  }

  async function device(
    deviceId: string,
    opts: Partial<DeviceClientOptions> = {},
    link?: MqttDeviceLink,
  ): Promise<DeviceClient> {
    const dev = new DeviceClient({
      url: broker.url,
      deviceId,
      token: 'unused-by-anonymous-mosquitto',
      ...opts,
    });
    cleanups.push(() => dev.stop());
    await dev.ready();
    if (link) await online(link, deviceId);
    return dev;
  }

  it('speaks MQTT 5 to Mosquitto and reports SUCCEEDED with the device result, every step in order', async () => {
    const dir = thermostatDirectory('t-ok');
    const { d, link } = await backend(dir);
    assert.equal(link.protocol, 5);
    const dev = await device('t-ok', { protocol: 5 }, link);
    const steps: string[] = [];
    d.on('transition', (r, s) => r.id === 'c-ok' && steps.push(s.state));
    d.submit({ id: 'c-ok', deviceId: 't-ok', name: 'led', params: { on: true, color: 'red' } });
    const r = await finalOf(d, 'c-ok');
    assert.equal(r.state, 'SUCCEEDED');
    assert.deepEqual(r.result, { on: true, color: 'red' });
    assert.deepEqual(steps, ['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED']);
    assert.deepEqual(states(r), steps);
    assert.deepEqual(dev.led, { on: true, color: 'red' });
  });

  it('reports FAILED with the device error, and REJECTED for a command the device does not know', async () => {
    const { d, link } = await backend(thermostatDirectory('t-fail'));
    const dev = await device('t-fail', { behaviour: 'fail' }, link);
    d.submit({ id: 'c-fail', deviceId: 't-fail', name: 'reboot' });
    const r = await finalOf(d, 'c-fail');
    assert.equal(r.state, 'FAILED');
    assert.equal(r.error, 'simulated failure of reboot');
    dev.behaviour = 'normal';
    d.submit({ id: 'c-self', deviceId: 't-fail', name: 'selftest' });
    const rej = await finalOf(d, 'c-self');
    assert.equal(rej.state, 'REJECTED');
    assert.equal(rej.error, 'unknown command selftest');
  });

  it('reports TIMED_OUT for a silent device and ignores (and counts) its late ack', async () => {
    const { d, link } = await backend(thermostatDirectory('t-late'));
    await device('t-late', { behaviour: 'ack-late', lateMs: 800 }, link);
    const ignored: string[] = [];
    d.on('ignoredAck', (e) => ignored.push(e.reason));
    d.submit({ id: 'c-late', deviceId: 't-late', name: 'reboot', timeoutMs: 200 });
    const r = await finalOf(d, 'c-late');
    assert.equal(r.state, 'TIMED_OUT');
    assert.deepEqual(states(r), ['QUEUED', 'SENT', 'DELIVERED', 'TIMED_OUT']);
    await once(d, 'ignoredAck');
    assert.deepEqual(ignored, ['late']);
    assert.equal(d.get('c-late')!.state, 'TIMED_OUT');
  });

  it('queues for an offline device and delivers in order when it connects', async () => {
    const { d, link } = await backend(thermostatDirectory('t-off'));
    for (const i of [1, 2, 3]) {
      const r = d.submit({
        id: `c-off-${i}`,
        deviceId: 't-off',
        name: 'set-interval',
        params: { intervalMs: i },
      });
      assert.equal(r.state, 'QUEUED');
    }
    assert.equal(d.stats().queued, 3);
    const order: string[] = [];
    const dev = new DeviceClient({ url: broker.url, deviceId: 't-off', token: 'x' });
    cleanups.push(() => dev.stop());
    dev.on('executed', (c) => order.push(c.id));
    const results = await Promise.all([1, 2, 3].map((i) => finalOf(d, `c-off-${i}`)));
    assert.deepEqual(
      results.map((r) => r.state),
      ['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED'],
    );
    assert.deepEqual(order, ['c-off-1', 'c-off-2', 'c-off-3']);
    assert.equal(link.isOnline('t-off'), true);
  });

  it('expires a command whose ttl passes while the device is offline, and never delivers it', async () => {
    const { d } = await backend(thermostatDirectory('t-exp'));
    d.submit({ id: 'c-exp', deviceId: 't-exp', name: 'reboot', ttlMs: 150 });
    const r = await finalOf(d, 'c-exp');
    assert.equal(r.state, 'EXPIRED');
    assert.deepEqual(states(r), ['QUEUED', 'EXPIRED']);
    const received: string[] = [];
    const dev = new DeviceClient({ url: broker.url, deviceId: 't-exp', token: 'x' });
    dev.on('command', (c) => received.push(c.id));
    cleanups.push(() => dev.stop());
    await dev.ready();
    // A command sent after the device announced itself travels the same path: once it is done, c-exp would have too.
    d.submit({ id: 'c-exp-probe', deviceId: 't-exp', name: 'reboot' });
    assert.equal((await finalOf(d, 'c-exp-probe')).state, 'SUCCEEDED');
    assert.deepEqual(received, ['c-exp-probe']);
  });

  it('runs a command once when the same id is submitted twice, also after a restart', async () => {
    const dir = thermostatDirectory('t-idem');
    const { d, link, dir: dataDir } = await backend(dir);
    const dev = await device('t-idem', {}, link);
    d.submit({ id: 'c-idem', deviceId: 't-idem', name: 'reboot' });
    assert.throws(
      () => d.submit({ id: 'c-idem', deviceId: 't-idem', name: 'reboot' }),
      (e: RejectionError) => e.rejection.code === 'DUPLICATE_ID',
    );
    await finalOf(d, 'c-idem');
    d.close();
    const again = await backend(dir, { dir: dataDir });
    assert.equal(again.d.get('c-idem')?.state, 'SUCCEEDED');
    assert.throws(
      () => again.d.submit({ id: 'c-idem', deviceId: 't-idem', name: 'reboot' }),
      (e: RejectionError) => e.rejection.code === 'DUPLICATE_ID',
    );
    assert.equal(dev.executions.get('c-idem'), 1);
  });

  it('ignores an ack for the command from a different device (security)', async () => {
    const { d, link } = await backend(thermostatDirectory('t-victim', 't-attacker'));
    await device('t-victim', { behaviour: 'never-ack' }, link);
    const attacker = await device('t-attacker', {}, link);
    d.submit({ id: 'c-victim', deviceId: 't-victim', name: 'reboot', timeoutMs: 1500 });
    const ignored = once(d, 'ignoredAck');
    // The broker's ACL lets a device publish only under its own id; so the attacker answers on its own topic.
    await attacker.client.publishAsync(
      'devices/t-attacker/commands/ack',
      JSON.stringify({ id: 'c-victim', status: 'succeeded', result: 'forged' }),
      { qos: 1 },
    );
    const [e] = (await ignored) as [{ deviceId: string; id: string; reason: string }];
    assert.deepEqual(e, { deviceId: 't-attacker', id: 'c-victim', reason: 'wrong_device' });
    const r = await finalOf(d, 'c-victim');
    assert.equal(r.state, 'TIMED_OUT');
    assert.equal(r.result, undefined);
  });

  it('kill switch and safe mode refuse new commands, cancel queued ones, and survive a restart', async () => {
    const dir = thermostatDirectory('t-k1', 't-k2', 't-k3');
    const { d, dir: dataDir } = await backend(dir);
    const audits: unknown[] = [];
    d.on('audit', (a) => audits.push(a));
    d.submit({ id: 'k-q1', deviceId: 't-k1', name: 'reboot' });
    d.submit({ id: 'k-q2', deviceId: 't-k2', name: 'reboot' });
    const a = d.setSafeMode('t-k1', true, 'maintenance', 'alice');
    assert.equal(a.canceled, 1);
    assert.equal(d.get('k-q1')!.state, 'CANCELED');
    assert.equal(d.get('k-q2')!.state, 'QUEUED');
    assert.throws(
      () => d.submit({ deviceId: 't-k1', name: 'reboot' }),
      (e: RejectionError) => e.rejection.code === 'SAFE_MODE',
    );
    const k = d.setKillSwitch(true, 'incident 42', 'bob');
    assert.equal(k.canceled, 1);
    assert.equal(d.get('k-q2')!.state, 'CANCELED');
    assert.deepEqual(d.get('k-q2')!.history.at(-1)!.reason, 'kill switch');
    assert.throws(
      () => d.submit({ deviceId: 't-k3', name: 'reboot' }),
      (e: RejectionError) => e.rejection.code === 'KILL_SWITCH',
    );
    assert.equal(audits.length, 2);
    d.close();

    const again = await backend(dir, { dir: dataDir });
    assert.equal(again.d.killSwitch.on, true);
    assert.equal(again.d.safeMode('t-k1'), true);
    assert.throws(() => again.d.submit({ deviceId: 't-k3', name: 'reboot' }));
    again.d.setKillSwitch(false, 'resolved', 'bob');
    assert.equal(again.d.submit({ deviceId: 't-k3', name: 'reboot' }).state, 'QUEUED');
    assert.throws(() => again.d.submit({ deviceId: 't-k1', name: 'reboot' }));
    again.d.setSafeMode('t-k1', false);
    assert.equal(again.d.submit({ deviceId: 't-k1', name: 'reboot' }).state, 'QUEUED');
  });

  it('after a restart sends queued commands and re-sends an unanswered one once; the device runs it once', async () => {
    const dir = thermostatDirectory('t-rs1', 't-rs2');
    const first = await backend(dir);
    const dev1 = await device('t-rs1', { behaviour: 'ack-late', lateMs: 60_000 }, first.link);
    first.d.submit({ id: 'rs-inflight', deviceId: 't-rs1', name: 'reboot', timeoutMs: 10_000 });
    first.d.submit({ id: 'rs-queued', deviceId: 't-rs2', name: 'reboot' });
    await once(dev1, 'executed');
    first.d.close();
    await first.link.end();

    const second = await backend(dir, { dir: first.dir });
    const dev2 = await device('t-rs2', {});
    const [a, b] = await Promise.all([finalOf(second.d, 'rs-inflight'), finalOf(second.d, 'rs-queued')]);
    assert.equal(a.state, 'SUCCEEDED');
    assert.equal(a.attempts, 2);
    assert.equal(a.history.filter((h) => h.state === 'SENT').length, 2);
    assert.equal(dev1.executions.get('rs-inflight'), 1);
    assert.equal(b.state, 'SUCCEEDED');
    assert.equal(dev2.executions.get('rs-queued'), 1);
  });

  it('ends every command in exactly one final state across a broker restart during dispatch', async () => {
    const ids = ['t-br1', 't-br2', 't-br3'];
    const { d, link } = await backend(thermostatDirectory(...ids), { ratePerSecond: 20 });
    const devs = await Promise.all(
      ids.map((id, i) => device(id, i === 2 ? { behaviour: 'ack-late', lateMs: 300 } : {}, link)),
    );
    const finals = new Map<string, number>();
    d.on('final', (r) => finals.set(r.id, (finals.get(r.id) ?? 0) + 1));
    const submitted = submitBurst(d, 'br', 60, ids);
    await broker.restart(); // while commands are queued (rate limit), in flight and acked late
    for (let i = 60; i < 75; i++) {
      const id = `br-${i}`;
      d.submit({ id, deviceId: ids[i % 3], name: 'reboot', timeoutMs: 3000 });
      submitted.push(id);
    }
    const results = await Promise.all(submitted.map((id) => finalOf(d, id, 60_000)));
    for (const r of results) {
      assert.equal(finals.get(r.id), 1, `${r.id} finished once`);
      assert.equal(r.history.filter((h) => isFinal(h.state)).length, 1, `${r.id}: ${states(r).join(',')}`);
    }
    // Every command either ran on its device or was never considered answered.
    for (const r of results)
      if (r.state === 'SUCCEEDED') assert.ok(devs.some((dev) => dev.executions.get(r.id) === 1));
    assert.ok(results.some((r) => r.state === 'SUCCEEDED'));
  });
});
