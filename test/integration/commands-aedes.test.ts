/**
 * Command dispatch through the embedded broker (aedes, MQTT 3.1.1): registry-authenticated reference devices,
 * per-device ACLs, DELIVERED from the broker's PUBACK event.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { DeviceBroker } from '../../nodes/lib/broker/broker';
import { CommandDispatcher } from '../../nodes/lib/commands/dispatcher';
import { isFinal } from '../../nodes/lib/commands/states';
import { DeviceClient, type DeviceClientOptions } from '../../nodes/lib/device-client';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { RejectionError } from '../../nodes/lib/rejection';
import { finalOf, logFile, online, states, submitBurst } from '../support/commands';
import { THERMOSTAT } from '../support/memory-directory';
import { freePort, tempDir } from '../support/servers';

const SECRET = 'aedes-command-test-secret-0123456789abcdef';
const IDS = ['a-ok', 'a-fail', 'a-late', 'a-off', 'a-exp', 'a-victim', 'a-attacker', 'a-r1', 'a-r2', 'a-r3'];

describe('command dispatch through the embedded aedes broker', () => {
  const dir = tempDir('commands-aedes');
  let registry: Registry;
  let broker: DeviceBroker;
  let port: number;
  let d: CommandDispatcher;
  const tokens: Record<string, string> = {};
  const devices: DeviceClient[] = [];

  const startBroker = async (): Promise<void> => {
    broker = await DeviceBroker.start({ registry }, { host: '127.0.0.1', port });
  };
  const startDispatcher = (): void => {
    d = new CommandDispatcher({
      link: broker,
      directory: registry,
      logFile: logFile(dir.path),
      timeoutMs: 5000,
      ttlMs: 60_000,
      queueBound: 100,
      ratePerSecond: 50,
    });
    d.setMaxListeners(0);
  };

  before(async () => {
    registry = new Registry(new FileDeviceStore(join(dir.path, 'registry.json')), SECRET);
    registry.putType(THERMOSTAT);
    for (const id of IDS) tokens[id] = registry.createDevice({ id, type: 'thermostat' }).token;
    port = await freePort();
    await startBroker();
    startDispatcher();
  });
  after(async () => {
    d.close();
    await broker.close();
    registry.close();
    dir.remove();
  });
  afterEach(async () => {
    for (const dev of devices.splice(0)) await dev.stop();
  });

  async function device(id: string, opts: Partial<DeviceClientOptions> = {}): Promise<DeviceClient> {
    const dev = new DeviceClient({
      url: `mqtt://127.0.0.1:${port}`,
      deviceId: id,
      token: tokens[id],
      ...opts,
    });
    devices.push(dev);
    await dev.ready();
    await online(broker, id);
    return dev;
  }

  it('SUCCEEDED with the result; DELIVERED comes from the broker (the device sends no "accepted")', async () => {
    await device('a-ok', { ackAccepted: false });
    d.submit({ id: 'ae-ok', deviceId: 'a-ok', name: 'led', params: { on: true } });
    const r = await finalOf(d, 'ae-ok');
    assert.deepEqual(states(r), ['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED']);
    assert.deepEqual(r.result, { on: true });
  });

  it('FAILED with the device error; TIMED_OUT for a device that answers too late', async () => {
    await device('a-fail', { behaviour: 'fail' });
    await device('a-late', { behaviour: 'ack-late', lateMs: 600 });
    d.submit({ id: 'ae-fail', deviceId: 'a-fail', name: 'reboot' });
    d.submit({ id: 'ae-late', deviceId: 'a-late', name: 'reboot', timeoutMs: 200 });
    const [f, t] = await Promise.all([finalOf(d, 'ae-fail'), finalOf(d, 'ae-late')]);
    assert.equal(f.state, 'FAILED');
    assert.equal(f.error, 'simulated failure of reboot');
    assert.equal(t.state, 'TIMED_OUT');
  });

  it('QUEUED while offline, delivered in order on connect; EXPIRED ones never delivered', async () => {
    d.submit({ id: 'ae-exp', deviceId: 'a-exp', name: 'reboot', ttlMs: 100 });
    d.submit({ id: 'ae-q1', deviceId: 'a-off', name: 'set-interval', params: { intervalMs: 1 } });
    d.submit({ id: 'ae-q2', deviceId: 'a-off', name: 'set-interval', params: { intervalMs: 2 } });
    assert.equal((await finalOf(d, 'ae-exp')).state, 'EXPIRED');
    const order: string[] = [];
    const dev = new DeviceClient({
      url: `mqtt://127.0.0.1:${port}`,
      deviceId: 'a-off',
      token: tokens['a-off'],
    });
    devices.push(dev);
    dev.on('executed', (c) => order.push(c.id));
    const [q1, q2] = await Promise.all([finalOf(d, 'ae-q1'), finalOf(d, 'ae-q2')]);
    assert.equal(q1.state, 'SUCCEEDED');
    assert.equal(q2.state, 'SUCCEEDED');
    assert.deepEqual(order, ['ae-q1', 'ae-q2']);

    const late = await device('a-exp');
    const got: string[] = [];
    late.on('command', (c) => got.push(c.id));
    d.submit({ id: 'ae-exp-probe', deviceId: 'a-exp', name: 'reboot' });
    await finalOf(d, 'ae-exp-probe');
    assert.deepEqual(got, ['ae-exp-probe'], 'the expired command was never sent');
    assert.throws(
      () => d.submit({ id: 'ae-q1', deviceId: 'a-off', name: 'reboot' }),
      (e: RejectionError) => e.rejection.code === 'DUPLICATE_ID',
    );
    assert.equal(dev.executions.get('ae-q1'), 1);
  });

  it('a device cannot answer another device’s command: the ACL stops it, and an ack on its own topic is ignored', async () => {
    await device('a-victim', { behaviour: 'never-ack' });
    const attacker = await device('a-attacker');
    d.submit({ id: 'ae-victim', deviceId: 'a-victim', name: 'reboot', timeoutMs: 1500 });
    const ignored: unknown[] = [];
    d.on('ignoredAck', (e) => ignored.push(e));
    const forged = JSON.stringify({ id: 'ae-victim', status: 'succeeded', result: 'forged' });
    // The broker refuses the publish on the victim's topic (MQTT 3.1.1 has no PUBACK error: it drops it or
    // disconnects); either way it never reaches the dispatcher.
    attacker.client.publish('devices/a-victim/commands/ack', forged, { qos: 0 });
    await attacker.client.publishAsync('devices/a-attacker/commands/ack', forged, { qos: 1 });
    const r = await finalOf(d, 'ae-victim');
    assert.equal(r.state, 'TIMED_OUT');
    assert.equal(r.result, undefined);
    assert.deepEqual(ignored, [{ deviceId: 'a-attacker', id: 'ae-victim', reason: 'wrong_device' }]);
  });

  it('broker and dispatcher restart (a redeploy) during dispatch: every command ends in exactly one final state', async () => {
    const ids = ['a-r1', 'a-r2', 'a-r3'];
    const devs = await Promise.all(
      ids.map((id, i) => device(id, i === 2 ? { behaviour: 'ack-late', lateMs: 400 } : {})),
    );
    const submitted = submitBurst(d, 'ae-br', 45, ids);
    await once(devs[2], 'executed'); // some in flight, some still queued by the rate limit
    d.close();
    await broker.close();
    await startBroker();
    startDispatcher();
    const finals = new Map<string, number>();
    d.on('final', (r) => finals.set(r.id, (finals.get(r.id) ?? 0) + 1));
    const results = await Promise.all(submitted.map((id) => finalOf(d, id, 60_000)));
    for (const r of results) {
      assert.ok(isFinal(r.state), `${r.id} final`);
      assert.equal(r.history.filter((h) => isFinal(h.state)).length, 1, `${r.id}: ${states(r).join(',')}`);
      assert.ok((finals.get(r.id) ?? 0) <= 1);
      const runs = devs.reduce((n, dev) => n + (dev.executions.get(r.id) ?? 0), 0);
      assert.ok(runs <= 1, `${r.id} ran ${runs} times`);
      if (r.state === 'SUCCEEDED') assert.equal(runs, 1);
    }
    assert.ok(results.filter((r) => r.state === 'SUCCEEDED').length > 0);
  });
});
