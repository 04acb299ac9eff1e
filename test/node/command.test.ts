import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { DeviceClient } from '../../nodes/lib/device-client';
import type { RegistryHolder } from '../../nodes/lib/registry/registry';
import { helper, nodeModule, received, type ReceivedMessages, type TestNode } from '../support/helper';
import { startMosquitto, tempDir, type Server } from '../support/servers';

const registryNode = nodeModule('registry');
const commandNode = nodeModule('command');

const COMMANDS = JSON.stringify({
  reboot: {},
  led: { params: { type: 'object', properties: { on: { type: 'boolean' } }, required: ['on'] } },
});

describe('iotb-command node (real registry node, Mosquitto, reference devices)', () => {
  let broker: Server;
  let dir: ReturnType<typeof tempDir>;
  const devices: DeviceClient[] = [];

  before(async () => {
    broker = await startMosquitto();
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await broker.stop();
  });
  beforeEach(() => {
    dir = tempDir('command-node');
    helper.settings({ userDir: dir.path });
  });
  afterEach(async () => {
    for (const dev of devices.splice(0)) await dev.stop();
    await helper.unload();
    dir.remove();
  });

  async function load(): Promise<{
    cmd: TestNode;
    results: ReceivedMessages;
    steps: ReceivedMessages;
    refused: ReceivedMessages;
    registry: NonNullable<RegistryHolder['registry']>;
  }> {
    await helper.load(
      [registryNode, commandNode],
      [
        {
          id: 'reg',
          type: 'iotb-registry',
          file: 'devices.json',
          types: [{ name: 'lamp', commands: COMMANDS }],
        },
        {
          id: 'cmd',
          type: 'iotb-command',
          registry: 'reg',
          transport: 'mqtt',
          url: broker.url,
          protocol: 'auto',
          timeoutMs: 2000,
          ttlMs: 60000,
          queueBound: 2,
          ratePerSecond: 20,
          wires: [['results'], ['steps'], ['refused']],
        },
        { id: 'results', type: 'helper' },
        { id: 'steps', type: 'helper' },
        { id: 'refused', type: 'helper' },
      ],
      { reg: { secret: 'node-test-registry-secret-0123456789abcdef' } },
    );
    const registry = (helper.getNode('reg') as unknown as RegistryHolder).registry!;
    return {
      cmd: helper.getNode('cmd'),
      results: received(helper.getNode('results')),
      steps: received(helper.getNode('steps')),
      refused: received(helper.getNode('refused')),
      registry,
    };
  }

  async function connect(id: string): Promise<DeviceClient> {
    const dev = new DeviceClient({ url: broker.url, deviceId: id, token: 'x' });
    devices.push(dev);
    await dev.ready();
    return dev;
  }

  it('sends a command, reports each transition on output 2 and the SUCCEEDED result on output 1', async () => {
    const { cmd, results, steps, registry } = await load();
    registry.createDevice({ id: 'lamp-1', type: 'lamp' });
    await connect('lamp-1');
    // The link learns presence from the retained status; a command sent before that is queued, then sent.
    cmd.receive({
      deviceId: 'lamp-1',
      id: 'n-1',
      payload: { name: 'led', params: { on: true } },
      tag: 'mine',
    });
    const queued = await steps.next((m) => m.payload.id === 'n-1' && m.payload.state === 'QUEUED');
    assert.equal(queued.tag, 'mine', 'the QUEUED step is the request message');
    const res = await results.next((m) => m.payload.id === 'n-1');
    assert.equal(res.payload.state, 'SUCCEEDED');
    assert.deepEqual(res.payload.result, { on: true });
    assert.equal(res.topic, 'devices/lamp-1/commands/result');
    const seen = steps.msgs.filter((m) => m.payload.id === 'n-1').map((m) => String(m.payload.state));
    assert.deepEqual(seen.slice(-2), ['DELIVERED', 'SUCCEEDED']);
    assert.ok(seen.includes('SENT'));

    cmd.receive({ topic: 'get', id: 'n-1' });
    const got = await results.next((m) => m.topic === 'get');
    assert.equal(got.payload.state, 'SUCCEEDED');
  });

  it('refuses unknown, disabled and revoked devices, disallowed commands, bad params and a full queue', async () => {
    const { cmd, refused, registry } = await load();
    registry.createDevice({ id: 'lamp-off', type: 'lamp', enabled: false });
    registry.createDevice({ id: 'lamp-rev', type: 'lamp' });
    registry.revokeTokens('lamp-rev');
    registry.createDevice({ id: 'lamp-q', type: 'lamp' });
    const cases: [Record<string, unknown>, string][] = [
      [{ deviceId: 'nobody', payload: { name: 'reboot' } }, 'UNKNOWN_DEVICE'],
      [{ deviceId: 'lamp-off', payload: { name: 'reboot' } }, 'DEVICE_DISABLED'],
      [{ deviceId: 'lamp-rev', payload: { name: 'reboot' } }, 'DEVICE_REVOKED'],
      [{ deviceId: 'lamp-q', payload: { name: 'format-disk' } }, 'COMMAND_NOT_ALLOWED'],
      [{ deviceId: 'lamp-q', payload: { name: 'led', params: { on: 'yes' } } }, 'INVALID_PARAMS'],
      [{ deviceId: 'bad/id', payload: { name: 'reboot' } }, 'INVALID_DEVICE_ID'],
      [{ deviceId: 'lamp-q', payload: { name: 'reboot' }, timeoutMs: -1 }, 'INVALID_TIMEOUTMS'],
      [{ deviceId: 'lamp-q', payload: { name: 'reboot' } }, ''],
      [{ deviceId: 'lamp-q', payload: { name: 'reboot' } }, ''],
      [{ deviceId: 'lamp-q', payload: { name: 'reboot' } }, 'QUEUE_FULL'],
    ];
    for (const [msg] of cases) cmd.receive(msg);
    const expected = cases.filter(([, c]) => c).map(([, c]) => c);
    await refused.count(expected.length);
    assert.deepEqual(
      refused.msgs.map((m) => String(m.rejection.code)),
      expected,
    );
    for (const m of refused.msgs) {
      assert.equal(m.rejection.stage, 'command');
      assert.ok(m.rejection.reason.length > 10);
    }
  });

  it('kill switch by message: cancels queued, refuses new, audits on output 2, off again', async () => {
    const { cmd, steps, refused, registry, results } = await load();
    registry.createDevice({ id: 'lamp-k', type: 'lamp' });
    cmd.receive({ deviceId: 'lamp-k', id: 'k-1', payload: { name: 'reboot' } });
    cmd.receive({ topic: 'kill-switch', payload: { on: true, reason: 'drill', by: 'ops' } });
    const audit = await steps.next((m) => m.topic === 'commands/audit');
    assert.deepEqual(
      {
        event: audit.payload.event,
        on: audit.payload.on,
        by: audit.payload.by,
        canceled: audit.payload.canceled,
      },
      { event: 'kill-switch', on: true, by: 'ops', canceled: 1 },
    );
    const canceled = await results.next((m) => m.payload.id === 'k-1');
    assert.equal(canceled.payload.state, 'CANCELED');
    cmd.receive({ deviceId: 'lamp-k', payload: { name: 'reboot' } });
    const r = await refused.next();
    assert.equal(r.rejection.code, 'KILL_SWITCH');
    cmd.receive({ topic: 'kill-switch', payload: false });
    cmd.receive({ topic: 'safe-mode', deviceId: 'lamp-k', payload: true });
    cmd.receive({ deviceId: 'lamp-k', payload: { name: 'reboot' } });
    await refused.count(2);
    assert.equal(refused.msgs[1].rejection.code, 'SAFE_MODE');
  });

  it('cancel answers with the request message as the final result; list and kill-switch-state answer on output 1', async () => {
    const { cmd, results, refused, registry } = await load();
    registry.createDevice({ id: 'lamp-c', type: 'lamp' });
    cmd.receive({ deviceId: 'lamp-c', id: 'c-1', payload: { name: 'reboot' } });
    cmd.receive({ deviceId: 'lamp-c', id: 'c-2', payload: { name: 'reboot' } });
    cmd.receive({ topic: 'cancel', id: 'c-1', tag: 'mine' });
    const canceled = await results.next((m) => m.payload.id === 'c-1');
    assert.equal(canceled.tag, 'mine', 'the final result of a cancel is the cancel message');
    assert.equal(canceled.payload.state, 'CANCELED');
    assert.equal(results.msgs.filter((m) => m.payload.id === 'c-1').length, 1, 'one final result');

    cmd.receive({ topic: 'list', deviceId: 'lamp-c', tag: 'pending' });
    const pending = await results.next((m) => m.tag === 'pending');
    assert.deepEqual(pending.payload.state, 'pending');
    assert.deepEqual(
      pending.payload.commands.map((c: { id: string }) => c.id),
      ['c-2'],
    );
    cmd.receive({ topic: 'list', deviceId: 'lamp-c', state: 'all', tag: 'all' });
    const all = await results.next((m) => m.tag === 'all');
    assert.deepEqual(
      all.payload.commands.map((c: { id: string; state: string }) => [c.id, c.state]),
      [
        ['c-1', 'CANCELED'],
        ['c-2', 'QUEUED'],
      ],
    );

    cmd.receive({ topic: 'kill-switch-state', tag: 'ks' });
    assert.equal((await results.next((m) => m.tag === 'ks')).payload.killSwitch.on, false);

    cmd.receive({ topic: 'cancel', id: 'c-1' });
    cmd.receive({ topic: 'cancel', id: 'nothing' });
    cmd.receive({ topic: 'list', deviceId: 'nobody' });
    cmd.receive({ topic: 'list', deviceId: 'lamp-c', state: 'BOGUS' });
    await refused.count(4);
    assert.deepEqual(
      refused.msgs.map((m) => String(m.rejection.code)),
      ['NOT_CANCELABLE', 'NOT_FOUND', 'UNKNOWN_DEVICE', 'INVALID_QUERY'],
    );
  });
});
