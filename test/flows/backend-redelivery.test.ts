/**
 * The shipped backend flow in a real node-red process, devices on the embedded broker: the telemetry spool is
 * full (influxd down, a 64 KiB spool), so readings get no PUBACK and the device's MQTT client sends them again
 * after every reconnect. Once influxd is back and the spool drains, every reading the device got a PUBACK
 * for is in InfluxDB: the re-sends were written, not refused as duplicates of readings never stored.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startBackend, type Backend, type FlowNode } from '../support/backend';
import { connectDevice } from '../support/mqtt-device';
import { eventually } from '../support/servers';

const READINGS = 20;

describe('backend: readings the full spool refused come again and are stored before they are acknowledged', () => {
  let b: Backend;
  let device: MqttClient | undefined;
  const tokens: Record<string, string> = {};

  before(async () => {
    b = await startBackend([], {}, {
      // The smallest telemetry spool, so that a few hundred readings fill it while influxd is down.
      patch: (flows: FlowNode[]) => {
        const telemetry = flows.find((n) => n.type === 'iotb-influx-write' && n.name === 'telemetry')!;
        telemetry.spoolMaxMB = 0.0625;
      },
    });
    for (const id of ['filler-1', 'redo-1']) {
      const created = await b.api('POST', '/api/devices', { body: { id, type: 'sensor' } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      tokens[id] = created.body.token as string;
    }
  });
  after(async () => {
    await device?.endAsync(true).catch(() => undefined);
    await b?.stop();
  });

  const metric = async (pattern: RegExp): Promise<number> => {
    const text = (await b.api('GET', '/metrics', { key: null })).body as string;
    return Number(pattern.exec(text)?.[1] ?? 0);
  };

  it('PUBACKs each reading only once it is stored; all of them end up in InfluxDB', async () => {
    await b.influx.pause();
    // Another device fills the spool over HTTP until not even one more reading fits (503).
    let next = 0;
    for (const size of [250, 25, 1]) {
      for (let i = 0; ; i++) {
        assert.ok(i < 100, `the spool never refused a batch of ${size}`);
        const body = Array.from({ length: size }, () => ({ ts: Date.now() - 3_600_000 + next++, temperature: 1 }));
        const res = await b.api('POST', '/api/devices/filler-1/telemetry', { key: tokens['filler-1'], body });
        if (res.status === 503) break;
        if (res.status === 429) {
          // The per-device rate limit: wait as told, as a device would.
          await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
        } else assert.equal(res.status, 202, JSON.stringify(res.body));
      }
    }

    // The device sends its readings at QoS 1; its client reconnects and sends again whatever got no PUBACK.
    const failuresBefore = await metric(/^iotb_ingest_ack_failures_total\{source="embedded-broker"\} (\d+)$/m);
    device = await connectDevice(b.mqttUrl, {
      clientId: 'redo-1',
      username: 'redo-1',
      password: tokens['redo-1'],
      reconnectPeriod: 300,
    });
    const t0 = Date.now() - 60_000;
    const acked: number[] = [];
    const published = Array.from({ length: READINGS }, (_, i) =>
      device!
        .publishAsync('devices/redo-1/telemetry', JSON.stringify({ ts: t0 + i, temperature: 20 + i / 10 }), { qos: 1 })
        .then(() => void acked.push(i)),
    );
    // Refused (no PUBACK, the connection closed) and sent again, more than once, while the spool is full.
    await eventually('the device refused and reconnecting', async () =>
      (await metric(/^iotb_ingest_ack_failures_total\{source="embedded-broker"\} (\d+)$/m)) >= failuresBefore + 3
        ? true
        : undefined,
    );
    assert.deepEqual(acked, [], 'nothing acknowledged while the spool refuses');
    await b.influx.start();
    await Promise.all(published);
    assert.equal(acked.length, READINGS);
    // Every acknowledged reading is in InfluxDB, once, with its value.
    let seen = 0;
    const rows = await eventually(
      () => `every acknowledged reading in InfluxDB (${seen} of ${READINGS} there)`,
      async () => {
        const got = await b.influxql(`SELECT temperature FROM telemetry WHERE device = 'redo-1'`);
        seen = got.length;
        return got.length >= READINGS ? got : undefined;
      },
      60_000,
    );
    assert.deepEqual(
      rows.map((r): unknown[] => [r.time, r.temperature]),
      Array.from({ length: READINGS }, (_, i) => [t0 + i, 20 + i / 10]),
    );
    assert.ok((await metric(/^iotb_duplicates_total\{stage="validate"\} (\d+)$/m)) >= 1, 're-sends counted');
    // A copy may be dropped as DUPLICATE once another copy is known stored; none was taken for another reading.
    const events = await b.influxql(`SELECT code FROM device_events WHERE device = 'redo-1' AND event = 'rejected'`);
    assert.ok(!events.some((e) => e.code === 'DUPLICATE_TS' || e.code === 'DUPLICATE_ID'), JSON.stringify(events));
  });
});
