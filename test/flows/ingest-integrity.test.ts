/**
 * Every acknowledged reading is its own point, stored as sent: the shipped backend flow in a real node-red
 * process with a real influxd, devices over HTTP and over the embedded broker (MQTT QoS 1).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBackend, type Backend, type FlowNode } from '../support/backend';
import { connectDevice } from '../support/mqtt-device';
import { eventually } from '../support/servers';

/** A device type whose schema admits any field, `device` and `type` included. */
const LOOSE_TYPE = { name: 'loose', schema: JSON.stringify({ type: 'object' }), commands: '{}' };

describe('ingest integrity: every accepted reading is its own point (shipped backend flow)', () => {
  let b: Backend;
  const clients: MqttClient[] = [];
  const tokens: Record<string, string> = {};

  before(async () => {
    b = await startBackend([], {}, { patch: (flows: FlowNode[]) => {
      const registry = flows.find((n) => n.type === 'iotb-registry')!;
      registry.types = [...(registry.types as unknown[]), LOOSE_TYPE];
    } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
    await b?.stop();
  });

  const provision = async (id: string, type: string): Promise<string> => {
    const created = await b.api('POST', '/api/devices', { body: { id, type } });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    tokens[id] = created.body.token as string;
    return tokens[id];
  };
  const mqttDevice = async (id: string): Promise<MqttClient> => {
    const c = await connectDevice(b.mqttUrl, { clientId: id, username: id, password: tokens[id] });
    clients.push(c);
    return c;
  };
  /** Publishes every payload at QoS 1 with at most `window` unacknowledged, as fast as PUBACKs come. */
  const publishAll = async (c: MqttClient, topic: string, payloads: string[], window = 100): Promise<void> => {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < payloads.length) await c.publishAsync(topic, payloads[next++], { qos: 1 });
    };
    await Promise.all(Array.from({ length: window }, lane));
  };
  const count = async (q: string): Promise<number> => {
    const rows = await b.influxql(q);
    return rows.length === 0 ? 0 : Number(rows[0].count);
  };
  const storedCount = (device: string, expected: number): Promise<number> =>
    eventually(`${expected} readings of ${device} in InfluxDB`, async () => {
      const n = await count(`SELECT count(temperature) FROM telemetry WHERE device = '${device}'`);
      return n >= expected ? n : undefined;
    });

  it('stores all 1,000 readings without ts sent over HTTP in batches of 100', async () => {
    const key = await provision('http-nots', 'sensor');
    let accepted = 0;
    for (let batch = 0; batch < 10; batch++) {
      const body = Array.from({ length: 100 }, (_, i) => ({ temperature: (batch * 100 + i) / 100 }));
      let res = await b.api('POST', '/api/devices/http-nots/telemetry', { key, body });
      // The per-device request rate is limited; the answer says when to come back.
      while (res.status === 429) {
        await new Promise((r) => setTimeout(r, Number(res.headers.get('retry-after') ?? 1) * 1000));
        res = await b.api('POST', '/api/devices/http-nots/telemetry', { key, body });
      }
      assert.equal(res.status, 202, JSON.stringify(res.body));
      accepted += res.body.accepted as number;
    }
    assert.equal(accepted, 1000);
    assert.equal(await storedCount('http-nots', 1000), 1000);
    // Each value exactly once.
    const rows = await b.influxql(`SELECT temperature FROM telemetry WHERE device = 'http-nots'`);
    assert.equal(new Set(rows.map((r) => r.temperature)).size, 1000);
  });

  it('stores all 1,000 readings without ts published at QoS 1 through the embedded broker', async () => {
    await provision('mqtt-nots', 'sensor');
    const c = await mqttDevice('mqtt-nots');
    const payloads = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ temperature: i / 10 }));
    await publishAll(c, 'devices/mqtt-nots/telemetry', payloads);
    assert.equal(await storedCount('mqtt-nots', 1000), 1000);
    const rejected = await count(
      `SELECT count(reason) FROM device_events WHERE device = 'mqtt-nots' AND event = 'rejected'`,
    );
    assert.equal(rejected, 0);
  });

  it('refuses a field named like a tag with its reason; no other device is touched', async () => {
    const key = await provision('v1', 'sensor');
    const t0 = Date.now() - 60_000;
    const ok = await b.api('POST', '/api/devices/v1/telemetry', { key, body: { ts: t0, temperature: 20 } });
    assert.equal(ok.status, 202);
    const v1Before = await eventually('v1 reading stored', async () => {
      const r = await b.api('GET', `/api/devices/v1/telemetry?field=temperature&from=${t0 - 1}`);
      const readings = r.body.readings as unknown[] | undefined;
      return readings?.length === 1 ? readings : undefined;
    });

    const looseKey = await provision('shadow-1', 'loose');
    const planted = { device: 'v1', type: 'sensor', temperature: 99.5 };
    const http = await b.api('POST', '/api/devices/shadow-1/telemetry', { key: looseKey, body: planted });
    assert.equal(http.status, 400);
    assert.equal(http.body.code, 'TAG_NAME');
    assert.match(http.body.reason, /field "device" has the name of a tag/);
    const c = await mqttDevice('shadow-1');
    await c.publishAsync('devices/shadow-1/telemetry', JSON.stringify(planted), { qos: 1 });
    await c.publishAsync('devices/shadow-1/telemetry', JSON.stringify({ type: 'x', temperature: 1 }), { qos: 1 });
    await c.publishAsync('devices/shadow-1/telemetry', JSON.stringify({ temperature: 2 }), { qos: 1 });

    const events = await eventually('three TAG_NAME rejections in device_events', async () => {
      const rows = await b.influxql(`SELECT * FROM device_events WHERE device = 'shadow-1' AND code = 'TAG_NAME'`);
      return rows.length >= 3 ? rows : undefined;
    });
    assert.equal(events.length, 3);
    assert.ok(events.every((e) => e.stage === 'validate' && /has the name of a tag/.test(String(e.reason))));
    await storedCount('shadow-1', 1); // the good reading went through, so the refused ones were not late
    const v1After = await b.api('GET', `/api/devices/v1/telemetry?field=temperature&from=${t0 - 1}`);
    assert.deepEqual(v1After.body.readings, v1Before);
    assert.equal(await count(`SELECT count(temperature) FROM telemetry WHERE device = 'shadow-1'`), 1);
    const fieldKeys = await b.influxql('SHOW FIELD KEYS FROM telemetry');
    assert.ok(!fieldKeys.some((k) => k.fieldKey === 'device' || k.fieldKey === 'type'));
  });

  it('keeps every device_events point of a burst of rejections in one millisecond', async () => {
    await provision('burst-1', 'sensor');
    const c = await mqttDevice('burst-1');
    const bad = Array.from({ length: 500 }, (_, i) => JSON.stringify({ temperature: 1000 + i }));
    await publishAll(c, 'devices/burst-1/telemetry', bad);
    const n = await eventually('500 rejections in device_events', async () => {
      const got = await count(`SELECT count(reason) FROM device_events WHERE device = 'burst-1' AND code = 'SCHEMA'`);
      return got >= 500 ? got : undefined;
    });
    assert.equal(n, 500);
  });

  it('stores a rejection reason and a status report with line breaks escaped, not refused', async () => {
    await provision('nl-1', 'sensor');
    const c = await mqttDevice('nl-1');
    await c.publishAsync('devices/nl-1/telemetry', JSON.stringify({ temperature: 1, 'a\nb': 2 }), { qos: 1 });
    await c.publishAsync('devices/nl-1/status', 'line one\r\nline two', { qos: 1 });
    const rows = await eventually('the rejection and the status in device_events', async () => {
      const got = await b.influxql(`SELECT * FROM device_events WHERE device = 'nl-1'`);
      const rejected = got.find((r) => r.event === 'rejected');
      const status = got.find((r) => r.event === 'status');
      return rejected && status ? { rejected, status } : undefined;
    });
    assert.equal(rows.rejected.reason, 'a\\nb is not a known field');
    assert.equal(rows.status.report, 'line one\\r\\nline two');
  });

  it('refuses a second reading with a taken ts (other values) and drops a repetition, both counted', async () => {
    await provision('ts-1', 'sensor');
    const c = await mqttDevice('ts-1');
    const ts = Date.now() - 30_000;
    for (const temperature of [1, 2, 1])
      await c.publishAsync('devices/ts-1/telemetry', JSON.stringify({ ts, temperature }), { qos: 1 });
    await c.publishAsync('devices/ts-1/telemetry', JSON.stringify({ ts: ts + 1, temperature: 3 }), { qos: 1 });
    await storedCount('ts-1', 2);
    const events = await eventually('both refusals in device_events', async () => {
      const rows = await b.influxql(`SELECT code, reason FROM device_events WHERE device = 'ts-1' AND event = 'rejected'`);
      return rows.length >= 2 ? rows : undefined;
    });
    assert.deepEqual(events.map((e) => e.code).sort(), ['DUPLICATE', 'DUPLICATE_TS']);
    const rows = await b.influxql(`SELECT temperature FROM telemetry WHERE device = 'ts-1'`);
    assert.deepEqual(
      rows.map((r) => [r.time, r.temperature]),
      [
        [ts, 1],
        [ts + 1, 3],
      ],
    );
  });
});
