/**
 * Device twins through the embedded broker (aedes) with registry-authenticated reference devices: desired
 * state reaches online and offline devices, reports converge, and each device reaches only its own twin.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { DeviceBroker } from '../../nodes/lib/broker/broker';
import { DeviceClient } from '../../nodes/lib/device-client';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import type { SecurityEvent } from '../../nodes/lib/security-events';
import { FileTwinStore } from '../../nodes/lib/twin/file-store';
import { TwinError, TwinService, type TwinView } from '../../nodes/lib/twin/twin-service';
import { closed, connectDevice, grants } from '../support/mqtt-device';
import { eventually, freePort, tempDir } from '../support/servers';

const SECRET = 'aedes-twin-test-secret-0123456789abcdef';
const IDS = ['t-online', 't-offline', 't-victim', 't-attacker', 't-bad'];

describe('device twins through the embedded aedes broker', () => {
  const dir = tempDir('twin-broker');
  let registry: Registry;
  let twins: TwinService;
  let broker: DeviceBroker;
  let url: string;
  const tokens: Record<string, string> = {};
  const devices: DeviceClient[] = [];
  const security: SecurityEvent[] = [];

  before(async () => {
    registry = new Registry(new FileDeviceStore(join(dir.path, 'registry.json')), SECRET);
    registry.putType({ name: 'thermostat' });
    for (const id of IDS) tokens[id] = registry.createDevice({ id, type: 'thermostat' }).token;
    twins = new TwinService({
      store: new FileTwinStore(join(dir.path, 'twins.json')),
      directory: registry,
      limits: { maxDocBytes: 1024 },
    });
    const port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    broker = await DeviceBroker.start({ registry, twins }, { host: '127.0.0.1', port });
    broker.on('security', (ev: SecurityEvent) => security.push(ev));
  });
  after(async () => {
    await broker.close();
    twins.close();
    registry.close();
    dir.remove();
  });
  afterEach(async () => {
    for (const dev of devices.splice(0)) await dev.stop();
  });

  async function device(id: string): Promise<DeviceClient> {
    const dev = new DeviceClient({ url, deviceId: id, token: tokens[id], twin: true });
    devices.push(dev);
    await dev.ready();
    return dev;
  }

  const converged = (id: string): Promise<TwinView> =>
    eventually(
      () => `${id} converges: ${JSON.stringify(twins.get(id))}`,
      () => {
        const v = twins.get(id);
        return v && v.desired.version > 0 && Object.keys(v.delta).length === 0 ? v : undefined;
      },
    );

  it('a desired change reaches an online device, which applies it and reports it back', async () => {
    const dev = await device('t-online');
    twins.patchDesired('t-online', { intervalMs: 60_000, mode: 'eco' });
    const v = await converged('t-online');
    assert.deepEqual(v.reported.state, { intervalMs: 60_000, mode: 'eco' });
    assert.equal(dev.telemetryIntervalMs, 60_000, 'the device runs the desired interval');
    assert.deepEqual(dev.config, { mode: 'eco' });
    assert.equal(dev.desiredVersion, 1);

    twins.patchDesired('t-online', { mode: 'comfort' }, 1);
    await eventually(
      'the second change converges',
      () => twins.get('t-online')!.reported.state.mode === 'comfort' || undefined,
    );
    assert.equal(dev.desiredVersion, 2);
  });

  it('an offline device gets its desired state when it connects and converges', async () => {
    twins.patchDesired('t-offline', { intervalMs: 30_000 });
    twins.patchDesired('t-offline', { setpoint: 21.5 });
    assert.deepEqual(twins.get('t-offline')!.delta, { intervalMs: 30_000, setpoint: 21.5 });
    const dev = await device('t-offline');
    const v = await converged('t-offline');
    assert.equal(v.desired.version, 2);
    assert.equal(dev.desiredVersion, 2);
    assert.equal(dev.telemetryIntervalMs, 30_000);
  });

  it('a patch based on a stale version is refused and does not reach the device', () => {
    twins.patchDesired('t-victim', { a: 1 });
    twins.patchDesired('t-victim', { a: 2 }, 1);
    assert.throws(
      () => twins.patchDesired('t-victim', { a: 3 }, 1),
      (err: unknown) => err instanceof TwinError && err.code === 'VERSION_CONFLICT' && err.status === 409,
    );
    assert.deepEqual(twins.get('t-victim')!.desired.state, { a: 2 });
  });

  it("a device can neither read another device's desired state nor write its reported state", async () => {
    twins.patchDesired('t-victim', { secret: 'for t-victim only' });
    const before = twins.get('t-victim')!.reported;
    const attacker = await connectDevice(url, {
      clientId: 't-attacker',
      username: 't-attacker',
      password: tokens['t-attacker'],
    });
    try {
      const received: string[] = [];
      attacker.on('message', (topic) => received.push(topic));
      assert.deepEqual(
        await grants(attacker, [
          'devices/t-victim/twin/desired',
          'devices/+/twin/desired',
          'devices/t-attacker/twin/desired',
        ]),
        [128, 128, 1],
      );
      await eventually(
        'its own desired arrives',
        () => received.includes('devices/t-attacker/twin/desired') || undefined,
      );
      assert.deepEqual(received, ['devices/t-attacker/twin/desired'], 'only its own document');
      const gone = closed(attacker);
      attacker.publish('devices/t-victim/twin/reported', JSON.stringify({ secret: 'overwritten' }), {
        qos: 1,
      });
      await gone; // a publish outside its own topics ends the session
    } finally {
      attacker.end(true);
    }
    assert.equal(twins.get('t-victim')!.reported, before, "the victim's reported state is untouched");
    const denied = security.filter((e) => e.event === 'acl_denied' && e.deviceId === 't-attacker');
    assert.deepEqual(
      denied.map((e) => e.reason),
      ['subscribe_topic', 'subscribe_topic', 'publish_topic'],
    );
  });

  it('a report that is not a JSON object or is too large is refused with a security event', async () => {
    const bad = await connectDevice(url, { clientId: 't-bad', username: 't-bad', password: tokens['t-bad'] });
    try {
      const topic = 'devices/t-bad/twin/reported';
      await bad.publishAsync(topic, '{"not json', { qos: 1 });
      await bad.publishAsync(topic, '[1,2]', { qos: 1 });
      await bad.publishAsync(topic, JSON.stringify({ blob: 'x'.repeat(2000) }), { qos: 1 });
      await bad.publishAsync(topic, JSON.stringify({ ok: true }), { qos: 1 });
      await eventually(
        'the good report is merged',
        () => twins.get('t-bad')!.reported.version === 1 || undefined,
      );
    } finally {
      await bad.endAsync();
    }
    assert.deepEqual(twins.get('t-bad')!.reported.state, { ok: true });
    const events = security.filter((e) => e.deviceId === 't-bad').map((e) => `${e.event} ${e.reason}`);
    assert.deepEqual(events, [
      'invalid_payload twin_reported_not_json',
      'invalid_payload twin_reported_invalid',
      'limit_exceeded twin_reported_too_large',
    ]);
  });
});
