/**
 * A real node-red process with the command node, its registry and an external Mosquitto, killed (SIGKILL) with
 * queued and in-flight commands: after the restart every command ends in exactly one final state.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import mqtt, { type MqttClient } from 'mqtt';
import { isFinal, type CommandState } from '../../nodes/lib/commands/states';
import { DeviceClient } from '../../nodes/lib/device-client';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { eventually, startMosquitto, type Server } from '../support/servers';

const SECRET = 'restart-test-registry-secret-0123456789ab';
/** What the flow publishes on test/results, test/steps and test/refused. */
interface Body {
  id?: string;
  state?: string;
  attempts?: number;
  history?: { state: string }[];
  payload?: { id?: string };
  rejection?: { code?: string };
}

function flows(brokerPort: number): unknown[] {
  const z = 'c0de000000000001';
  return [
    { id: z, type: 'tab', label: 'commands' },
    {
      id: 'c0de000000000002',
      type: 'mqtt-broker',
      broker: '127.0.0.1',
      port: String(brokerPort),
      clientid: '',
      protocolVersion: '4',
      keepalive: '60',
      cleansession: true,
      autoConnect: true,
    },
    { id: 'c0de000000000003', type: 'iotb-registry', file: 'devices.json', rotationGraceS: 60, types: [] },
    {
      id: 'c0de000000000004',
      type: 'mqtt in',
      z,
      topic: 'test/requests',
      qos: '1',
      datatype: 'json',
      broker: 'c0de000000000002',
      nl: false,
      rap: false,
      inputs: 0,
      wires: [['c0de000000000005']],
    },
    {
      id: 'c0de000000000005',
      type: 'function',
      z,
      func: 'return msg.payload;',
      outputs: 1,
      wires: [['c0de000000000006']],
    },
    {
      id: 'c0de000000000006',
      type: 'iotb-command',
      z,
      registry: 'c0de000000000003',
      transport: 'mqtt',
      url: `mqtt://127.0.0.1:${brokerPort}`,
      protocol: 'auto',
      prefix: 'devices',
      timeoutMs: 4000,
      ttlMs: 600000,
      queueBound: 100,
      ratePerSecond: 50,
      wires: [['c0de000000000007'], ['c0de000000000008'], ['c0de000000000009']],
    },
    {
      id: 'c0de000000000007',
      type: 'mqtt out',
      z,
      topic: 'test/results',
      qos: '1',
      broker: 'c0de000000000002',
      wires: [],
    },
    {
      id: 'c0de000000000008',
      type: 'mqtt out',
      z,
      topic: 'test/steps',
      qos: '1',
      broker: 'c0de000000000002',
      wires: [],
    },
    {
      id: 'c0de000000000009',
      type: 'mqtt out',
      z,
      topic: 'test/refused',
      qos: '1',
      broker: 'c0de000000000002',
      wires: [],
    },
  ];
}

describe('iotb-command in a real node-red process killed with queued and in-flight commands', () => {
  let broker: Server;
  let nr: NodeRedProcess;
  let probe: MqttClient;
  const devices: DeviceClient[] = [];
  const seen: { topic: string; body: Body }[] = [];

  before(async () => {
    broker = await startMosquitto();
    nr = await startNodeRed({
      flows: flows(broker.port),
      prepareUserDir: (userDir) => {
        // Seed the registry the flow opens: a device type and its devices (secret beside the state file).
        const file = join(userDir, 'devices.json');
        const reg = new Registry(new FileDeviceStore(file), SECRET);
        reg.putType({ name: 'lamp', commands: { reboot: {}, 'set-interval': {} } });
        for (const id of ['r-inflight', 'r-silent', 'r-offline', 'r-done'])
          reg.createDevice({ id, type: 'lamp' });
        reg.close();
        writeFileSync(`${file}.secret`, SECRET, { mode: 0o600 });
      },
    });
    probe = await mqtt.connectAsync(broker.url, { clientId: `probe-${process.pid}` });
    await probe.subscribeAsync('test/#', { qos: 1 });
    probe.on('message', (topic, payload) => {
      seen.push({ topic, body: JSON.parse(payload.toString()) as Body });
    });
  });
  after(async () => {
    for (const d of devices) await d.stop();
    await probe?.endAsync();
    await nr?.stop();
    await broker?.stop();
  });

  /** Names what is awaited, and at a failure what the probe had seen by then. */
  const awaiting = (what: string) => (): string =>
    `${what}; seen ${JSON.stringify(seen.map((s) => [s.topic, s.body.id ?? s.body.payload?.id, s.body.state ?? s.body.rejection?.code]))}`;

  /** The flow's `mqtt in` subscribes some time after start: probe until it answers (a refusal). */
  async function flowReady(): Promise<void> {
    const before = seen.filter((s) => s.topic === 'test/refused').length;
    await eventually(
      awaiting('the flow to answer'),
      () => {
        if (seen.filter((s) => s.topic === 'test/refused').length > before) return true;
        probe.publish('test/requests', JSON.stringify({ deviceId: 'nobody', payload: { name: 'reboot' } }), {
          qos: 1,
        });
        return undefined;
      },
      30_000,
    );
  }

  const send = (req: Record<string, unknown>): Promise<unknown> =>
    probe.publishAsync('test/requests', JSON.stringify(req), { qos: 1 });
  const finals = (id: string): Body[] =>
    seen.filter((s) => s.topic === 'test/results' && s.body.id === id).map((s) => s.body);
  const stepsOf = (id: string): string[] =>
    seen.filter((s) => s.topic === 'test/steps' && s.body.id === id).map((s) => String(s.body.state));

  it('resolves every command exactly once across a crash and restart', async () => {
    await flowReady();
    const inflight = new DeviceClient({
      url: broker.url,
      deviceId: 'r-inflight',
      token: 'x',
      behaviour: 'ack-late',
      lateMs: 120_000,
    });
    const silent = new DeviceClient({
      url: broker.url,
      deviceId: 'r-silent',
      token: 'x',
      behaviour: 'never-ack',
    });
    const done = new DeviceClient({ url: broker.url, deviceId: 'r-done', token: 'x' });
    devices.push(inflight, silent, done);
    await Promise.all([inflight.ready(), silent.ready(), done.ready()]);

    await send({ id: 'x-done', deviceId: 'r-done', payload: { name: 'reboot' } });
    await send({ id: 'x-inflight', deviceId: 'r-inflight', payload: { name: 'reboot' }, timeoutMs: 30_000 });
    await send({ id: 'x-silent', deviceId: 'r-silent', payload: { name: 'reboot' } });
    await send({
      id: 'x-queued-1',
      deviceId: 'r-offline',
      payload: { name: 'set-interval', params: { intervalMs: 1 } },
    });
    await send({
      id: 'x-queued-2',
      deviceId: 'r-offline',
      payload: { name: 'set-interval', params: { intervalMs: 2 } },
    });
    await eventually(awaiting('x-done to succeed'), () => finals('x-done').length === 1 || undefined, 30_000);
    await eventually(
      awaiting('commands in flight and queued'),
      () =>
        (stepsOf('x-inflight').includes('DELIVERED') &&
          stepsOf('x-silent').includes('SENT') &&
          stepsOf('x-queued-2').includes('QUEUED')) ||
        undefined,
      30_000,
    );
    assert.equal(inflight.executions.get('x-inflight'), 1);

    await nr.crashAndRestart();

    const offline = new DeviceClient({ url: broker.url, deviceId: 'r-offline', token: 'x' });
    devices.push(offline);
    const order: string[] = [];
    offline.on('executed', (c) => order.push(c.id));
    const ids = ['x-done', 'x-inflight', 'x-silent', 'x-queued-1', 'x-queued-2'];
    await eventually(
      awaiting('every command to finish'),
      () => ids.every((id) => finals(id).length >= 1) || undefined,
      60_000,
    );
    // Linger briefly for any duplicate result to show up (there must be none).
    await flowReady();

    const state = (id: string): string | undefined => finals(id)[0].state;
    for (const id of ids) assert.equal(finals(id).length, 1, `${id} has exactly one final result`);
    for (const id of ids)
      assert.equal(finals(id)[0].history!.filter((h) => isFinal(h.state as CommandState)).length, 1);
    assert.equal(state('x-done'), 'SUCCEEDED');
    assert.equal(
      state('x-inflight'),
      'SUCCEEDED',
      're-sent once after the restart, answered from the device cache',
    );
    assert.equal(finals('x-inflight')[0].attempts, 2);
    assert.equal(inflight.executions.get('x-inflight'), 1, 'the device ran it once');
    assert.equal(state('x-silent'), 'TIMED_OUT');
    assert.equal(state('x-queued-1'), 'SUCCEEDED');
    assert.equal(state('x-queued-2'), 'SUCCEEDED');
    assert.deepEqual(order, ['x-queued-1', 'x-queued-2']);
  });
});
