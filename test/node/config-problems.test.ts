/**
 * A config node whose setting cannot work (an environment variable left unset, a bad URL or port) says
 * which setting and which variable in ONE log line, and the nodes that use it say so in their status:
 * "InfluxDB config invalid: …" / "broker config invalid: …", not "no InfluxDB configured" or a raw
 * TypeError / getaddrinfo error.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { recordingOwner } from '../support/acks';
import { helper, nextMessage, nodeModuleWithMessages } from '../support/helper';
import { tempDir } from '../support/servers';

const nodes = ['registry', 'broker', 'device-in', 'command', 'influx', 'influx-write', 'influx-query'].map(
  nodeModuleWithMessages,
);
const SECRET = 'config-problems-test-secret-0123456789abcdef';

/** Every status a node has shown since the flow was loaded (the helper spies on Node.prototype.status). */
function statuses(id: string): string[] {
  const spy = (helper as unknown as { _NodePrototype: { status: { getCalls(): any[] } } })._NodePrototype
    .status;
  return spy
    .getCalls()
    .filter((c) => c.thisValue.id === id)
    .map((c) => String(c.args[0]?.text ?? ''));
}

/** The log lines at level error so far, as text. */
function errorLines(): string[] {
  return (helper.log().args as any[][])
    .filter((a) => a[0].level === helper.log().ERROR)
    .map((a) => `[${String(a[0].type)}:${String(a[0].id)}] ${String(a[0].msg)}`);
}

describe('config problems: said once by the config node, shown by its dependents', () => {
  const userDir = tempDir('config-problems');
  before(async () => {
    helper.settings({ userDir: userDir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    userDir.remove();
  });
  afterEach(() => helper.unload());

  const influxFlow = (cfg: Record<string, unknown>): unknown[] => [
    { id: 'cfg', type: 'iotb-influx', flavour: '1', url: '${IOTB_INFLUX_URL}', database: 'iot', ...cfg },
    { id: 'tab', type: 'tab' },
    { id: 'w', type: 'iotb-influx-write', z: 'tab', influx: 'cfg', wires: [['ok'], ['bad'], []] },
    { id: 'q', type: 'iotb-influx-query', z: 'tab', influx: 'cfg', query: 'SELECT 1', wires: [['ok']] },
    { id: 'ok', type: 'helper', z: 'tab' },
    { id: 'bad', type: 'helper', z: 'tab' },
  ];

  it('an unset ${IOTB_INFLUX_URL}: one log line naming URL and the variable; writer and query say "InfluxDB config invalid"', async () => {
    delete process.env.IOTB_INFLUX_URL;
    await helper.load(nodes, influxFlow({}));
    const expected = 'InfluxDB config invalid: URL: environment variable IOTB_INFLUX_URL is not set';
    assert.deepEqual(errorLines(), [`[iotb-influx:cfg] ${expected}`]);
    assert.deepEqual(statuses('w'), [expected]);
    assert.deepEqual(statuses('q'), [expected]);
    assert.ok(!errorLines().some((l) => /Invalid URL|not configured/.test(l)));
  });

  it('a writer on an invalid config refuses each reading with the reason and does not acknowledge it', async () => {
    await helper.load(nodes, influxFlow({ url: 'influx.local:8086' }));
    const problem = 'URL "influx.local:8086" must start with http:// or https://';
    assert.deepEqual(errorLines(), [`[iotb-influx:cfg] InfluxDB config invalid: ${problem}`]);
    const owner = recordingOwner();
    const ackId = owner.hold();
    const refused = nextMessage(helper.getNode('bad'));
    helper.getNode('w').receive({ payload: { temperature: 1 }, ackId });
    const msg = await refused;
    assert.equal(msg.rejection.code, 'CONFIG_INVALID');
    assert.equal(msg.rejection.reason, `InfluxDB config invalid: ${problem}`);
    assert.deepEqual(owner.seen, [[ackId, 'failed']]);
    owner.close();
    assert.equal(errorLines().length, 1, 'a refused reading adds no log line');
  });

  it('a query on an invalid config fails with the reason (for a catch node)', async () => {
    await helper.load(nodes, influxFlow({ url: 'not a url' }));
    const q = helper.getNode('q');
    const failed = new Promise<any>((resolve) => q.on('call:error', resolve));
    q.receive({ payload: 1 });
    const call = await failed;
    assert.match(String(call.args[0]), /InfluxDB config invalid: URL "not a url" is not a URL/);
  });

  it('an empty database is named too', async () => {
    await helper.load(nodes, influxFlow({ url: 'http://127.0.0.1:8086', database: '${IOTB_INFLUX_DB}' }));
    assert.deepEqual(statuses('w'), [
      'InfluxDB config invalid: Database: environment variable IOTB_INFLUX_DB is not set',
    ]);
  });

  const brokerFlow = (broker: Record<string, unknown>): unknown[] => [
    { id: 'reg', type: 'iotb-registry', file: `reg-${Math.random()}.json`, types: [] },
    {
      id: 'b',
      type: 'iotb-broker',
      registry: 'reg',
      host: '${IOTB_MQTT_HOST}',
      port: '${IOTB_MQTT_PORT}',
      ...broker,
    },
    { id: 'tab', type: 'tab' },
    { id: 'in', type: 'iotb-device-in', z: 'tab', broker: 'b', wires: [[], []] },
    {
      id: 'cmd',
      type: 'iotb-command',
      z: 'tab',
      registry: 'reg',
      transport: 'broker',
      broker: 'b',
      wires: [[], [], []],
    },
  ];

  it('an unset ${IOTB_MQTT_HOST}: one log line; device-in and command say "broker config invalid"', async () => {
    delete process.env.IOTB_MQTT_HOST;
    await helper.load(nodes, brokerFlow({}), { reg: { secret: SECRET } });
    const expected = 'broker config invalid: Host: environment variable IOTB_MQTT_HOST is not set';
    assert.deepEqual(errorLines(), [`[iotb-broker:b] ${expected}`]);
    assert.deepEqual(statuses('in'), [expected]);
    assert.deepEqual(statuses('cmd'), [expected]);
  });

  it('a bad port is named with its value', async () => {
    await helper.load(nodes, brokerFlow({ host: '127.0.0.1', port: '99999' }), { reg: { secret: SECRET } });
    assert.deepEqual(errorLines(), [
      '[iotb-broker:b] broker config invalid: Port "99999" is not a port (1-65535)',
    ]);
  });
});
