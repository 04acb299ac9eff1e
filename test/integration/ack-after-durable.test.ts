/**
 * "A PUBACK means stored" on the embedded broker, against the shipped backend flow in a real node-red process
 * with a real influxd: node-red is killed with SIGKILL during QoS 1 bursts at different moments and started
 * again (one device with 100 publishes in flight beside 1,000 devices); afterwards every reading a device got a
 * PUBACK for is in InfluxDB exactly once (by device, ts and value). And a flow that drops readings does not
 * stall a device: it gets its PUBACKs after the ack timeout, counted in /metrics and named in /api/health.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBackend, type Backend, type FlowNode } from '../support/backend';
import { closed, connectDevice } from '../support/mqtt-device';
import { eventually, waitForPort } from '../support/servers';

/** Readings carry `ts` one millisecond apart per device, and a value unique per device and slowly rising. */
const T0 = Date.now() - 3_600_000;
const reading = (seq: number): { ts: number; temperature: number } => ({
  ts: T0 + seq,
  temperature: Number((20 + seq * 0.0001).toFixed(4)),
});
const key = (device: string, ts: number, value: number): string => `${device}|${ts}|${value}`;

interface Device {
  id: string;
  token: string;
  /** Next sequence number to send. */
  seq: number;
}

/** The test's many devices all connect from 127.0.0.1: the per-address connect rate limit is lifted for them. */
function unlimitedConnects(flows: FlowNode[]): void {
  for (const n of flows) if (n.type === 'iotb-broker') n.connectRatePerIp = 0;
}

async function register(b: Backend, count: number, prefix: string): Promise<Device[]> {
  const devices: Device[] = [];
  for (let i = 0; i < count; i += 50) {
    const ids = Array.from({ length: Math.min(50, count - i) }, (_, j) => `${prefix}-${i + j}`);
    const created = await Promise.all(
      ids.map((id) => b.api('POST', '/api/devices', { body: { id, type: 'sensor' } })),
    );
    created.forEach((r, j) => {
      assert.equal(r.status, 201, JSON.stringify(r.body));
      devices.push({ id: ids[j], token: (r.body as { token: string }).token, seq: 0 });
    });
  }
  return devices;
}

/**
 * Publishes QoS 1 readings from one device with `window` in flight, until `perDevice` were sent or the connection
 * closes; records each PUBACKed reading in `acked`.
 */
async function publishFrom(
  client: MqttClient,
  d: Device,
  window: number,
  perDevice: number,
  acked: Set<string>,
): Promise<void> {
  const gone = closed(client).then(() => 'closed' as const);
  const last = d.seq + perDevice;
  const worker = async (): Promise<void> => {
    while (d.seq < last && client.connected) {
      const r = reading(d.seq++);
      const sent = client.publishAsync(`devices/${d.id}/telemetry`, JSON.stringify(r), { qos: 1 }).then(
        () => 'acked' as const,
        () => 'closed' as const,
      );
      if ((await Promise.race([sent, gone])) === 'closed') return;
      acked.add(key(d.id, r.ts, r.temperature));
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
}

/** Devices that publish alike: `window` readings in flight each, at most `perDevice` per burst. */
interface Group {
  devices: Device[];
  window: number;
  perDevice: number;
  acked: Set<string>;
}

/** One burst: every device connects and publishes; node-red is killed `killAfterMs` in, then started again. */
async function burstWithKill(b: Backend, groups: Group[], killAfterMs: number): Promise<void> {
  const all = groups.flatMap((g) => g.devices.map((d) => ({ d, g })));
  const clients: MqttClient[] = [];
  for (let i = 0; i < all.length; i += 100)
    clients.push(
      ...(await Promise.all(
        all
          .slice(i, i + 100)
          .map(({ d }) => connectDevice(b.mqttUrl, { clientId: d.id, username: d.id, password: d.token })),
      )),
    );
  const total = (): number => groups.reduce((n, g) => n + g.acked.size, 0);
  const ackedBefore = total();
  const publishing = Promise.all(
    all.map(({ d, g }, i) => publishFrom(clients[i], d, g.window, g.perDevice, g.acked)),
  );
  // Kill once the burst is under way (some PUBACKs came), at this round's moment.
  await eventually('the first PUBACKs of the burst', () =>
    Promise.resolve(total() > ackedBefore || undefined),
  );
  await new Promise((r) => setTimeout(r, killAfterMs));
  await b.nr.crashAndRestart();
  await publishing;
  await waitForPort(Number(new URL(b.mqttUrl).port)); // the broker listens a moment after the flows start
  for (const c of clients) c.end(true);
}

async function stored(b: Backend, prefix: string): Promise<Map<string, number>> {
  const rows = await b.influxql(
    `SELECT "temperature", "device" FROM "telemetry" WHERE "device" =~ /^${prefix}-/`,
  );
  const seen = new Map<string, number>();
  for (const r of rows) {
    const k = key(String(r.device), Number(r.time), Number(r.temperature));
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  return seen;
}

async function assertAllStoredOnce(b: Backend, prefix: string, acked: Set<string>): Promise<void> {
  let missing: string[] = [];
  await eventually(
    'every PUBACKed reading in InfluxDB',
    async () => {
      const seen = await stored(b, prefix);
      missing = [...acked].filter((k) => seen.get(k) !== 1);
      return missing.length === 0 ? true : undefined;
    },
    60_000,
  ).catch((err: unknown) => {
    throw new Error(
      `${(err as Error).message}: ${missing.length} of ${acked.size} missing, e.g. ${missing.slice(0, 3).join(', ')}`,
    );
  });
}

describe('PUBACK after durable: kill -9 of node-red during QoS 1 bursts (shipped backend flow)', () => {
  let b: Backend;
  before(async () => {
    b = await startBackend([], {}, { patch: unlimitedConnects });
  });
  after(() => b?.stop());

  it('one fast device with 100 publishes in flight beside 1,000 devices: five kills, every PUBACKed reading stored once', async (t) => {
    const fast: Group = {
      devices: await register(b, 1, 'fast'),
      window: 100,
      perDevice: 3000,
      acked: new Set(),
    };
    const many: Group = {
      devices: await register(b, 1000, 'many'),
      window: 2,
      perDevice: 10,
      acked: new Set(),
    };
    for (const killAfterMs of [0, 150, 400, 800, 1500]) await burstWithKill(b, [fast, many], killAfterMs);
    t.diagnostic(
      `PUBACKed over five kills: ${fast.acked.size} of the fast device, ${many.acked.size} of 1,000 devices`,
    );
    assert.ok(fast.acked.size > 0 && many.acked.size > 0, 'both kinds of device got acknowledgements');
    await assertAllStoredOnce(b, 'fast', fast.acked);
    await assertAllStoredOnce(b, 'many', many.acked);
  });
});

describe('ack timeout: a flow that drops readings does not stall a device', () => {
  let b: Backend;
  before(async () => {
    // The telemetry output of the "kind" switch goes nowhere: readings are dropped between ingest and storage.
    b = await startBackend(
      [],
      {},
      {
        patch: (flows) => {
          for (const n of flows) {
            if (n.type === 'iotb-broker') n.ackTimeoutS = 0.5;
            if (n.type === 'switch' && n.name === 'kind') (n.wires as string[][])[0] = [];
          }
        },
      },
    );
  });
  after(() => b?.stop());

  it('gets PUBACKs after the timeout, counted in /metrics and named in /api/health', async () => {
    const [d] = await register(b, 1, 'dropped');
    const c = await connectDevice(b.mqttUrl, { clientId: d.id, username: d.id, password: d.token });
    await Promise.all(
      [0, 1, 2].map((i) =>
        c.publishAsync(`devices/${d.id}/telemetry`, JSON.stringify(reading(i)), { qos: 1 }),
      ),
    );
    await c.endAsync();
    // The readings are dropped, so only the timeout can have released the PUBACKs: the gate counts each timeout
    // before it releases the PUBACK, so all three are counted by now.
    const metrics = await b.api('GET', '/metrics', { key: null });
    assert.match(String(metrics.body), /^iotb_ingest_ack_timeouts_total\{source="embedded-broker"\} 3$/m);
    const health = await b.api('GET', '/api/health', { key: null });
    assert.equal(health.status, 503);
    assert.equal(health.body.status, 'degraded');
    assert.match(String(health.body.broker.reasons?.[0]), /ack timeout/);
  });
});
