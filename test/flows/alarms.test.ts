/**
 * The alarm part of flows/backend.json in a real node-red process with influxd: readings over the HTTP
 * ingest raise the shipped `sensor-hot` alarm, the operator API lists, acknowledges and clears it with
 * {code, reason} errors, and every transition lands in InfluxDB measurement `alarms`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';

describe('alarms in flows/backend.json', () => {
  let b: Backend;
  before(async () => {
    b = await startBackend();
  });
  after(() => b?.stop());

  it('raises from ingested readings; lists, acknowledges and clears through the operator API', async () => {
    const created = await b.api('POST', '/api/devices', { body: { id: 'oven-1', type: 'sensor' } });
    assert.equal(created.status, 201);
    const key = created.body.token as string;
    for (const temperature of [70, 71, 72])
      assert.equal((await b.api('POST', '/api/devices/oven-1/telemetry', { key, body: { temperature } })).status, 202);

    const active = await eventually('the raised alarm', async () => {
      const r = await b.api('GET', '/api/alarms?state=active&device=oven-1');
      return r.status === 200 && r.body.length === 1 ? (r.body[0] as Record<string, any>) : undefined;
    });
    assert.equal(active.rule, 'sensor-hot');
    assert.equal(active.state, 'ACTIVE_UNACK');
    assert.equal(active.severity, 'major');
    assert.deepEqual(active.raiseValues, { temperature: 72 });

    assert.equal((await b.api('GET', '/api/alarms', { key: null })).status, 401);
    assert.equal((await b.api('POST', `/api/alarms/${active.id}/ack`, { key: 'wrong' })).status, 401);
    assert.deepEqual((await b.api('GET', '/api/alarms?severity=critical')).body, []);
    const badFilter = await b.api('GET', '/api/alarms?state=burning');
    assert.equal(badFilter.status, 400);
    assert.equal(badFilter.body.code, 'BAD_FILTER');
    const missing = await b.api('GET', '/api/alarms/999999');
    assert.deepEqual([missing.status, missing.body], [404, { code: 'NOT_FOUND', reason: 'no alarm 999999' }]);

    const one = await b.api('GET', `/api/alarms/${active.id}`);
    assert.equal(one.body.id, active.id);
    const acked = await b.api('POST', `/api/alarms/${active.id}/ack`);
    assert.equal(acked.status, 200);
    assert.equal(acked.body.state, 'ACTIVE_ACK');
    assert.match(acked.body.ackBy, /^apiKey:/);
    const again = await b.api('POST', `/api/alarms/${active.id}/ack`);
    assert.equal(again.status, 409);
    assert.equal(again.body.code, 'ALREADY_ACKED');
    const cleared = await b.api('POST', `/api/alarms/${active.id}/clear`);
    assert.equal(cleared.body.state, 'CLEARED_ACK');
    assert.deepEqual((await b.api('GET', '/api/alarms?state=open&device=oven-1')).body, []);

    const rows = await eventually('three transitions in InfluxDB', async () => {
      const r = await b.influxql(`SELECT "transition", "count", "device", "rule", "severity", "state" FROM alarms WHERE device = 'oven-1'`);
      return r.length === 3 ? r : undefined;
    });
    assert.deepEqual(
      rows.map((r) => `${String(r.transition)} ${String(r.state)} ${String(r.rule)} ${String(r.severity)}`),
      ['raised ACTIVE_UNACK sensor-hot major', 'acknowledged ACTIVE_ACK sensor-hot major', 'cleared CLEARED_ACK sensor-hot major'],
    );
  });

  it('raises the data-quality alarm when a device sends mostly readings the schema refuses', async () => {
    const created = await b.api('POST', '/api/devices', { body: { id: 'flaky-1', type: 'sensor' } });
    const key = created.body.token as string;
    for (let i = 0; i < 20; i++) {
      const body = i % 4 === 0 ? { temperature: 20 } : { temperature: 'hot' }; // 75 % refused
      const res = await b.api('POST', '/api/devices/flaky-1/telemetry', { key, body });
      assert.equal(res.status, i % 4 === 0 ? 202 : 400);
    }
    const alarm = await eventually('the data-quality alarm', async () => {
      const r = await b.api('GET', '/api/alarms?device=flaky-1&state=active');
      return (r.body as Record<string, any>[]).find((a) => a.rule === 'data-quality');
    });
    assert.equal(alarm.severity, 'minor');
    assert.ok(alarm.raiseValues.share > 0.2, `share ${alarm.raiseValues.share}`);
  });

  it('turns Alertmanager webhook alerts into alarms with the same lifecycle, operator key required', async () => {
    const alert = (status: string) => ({
      status,
      alerts: [{ status, labels: { alertname: 'IotbTest', severity: 'critical', instance: 'x' }, annotations: { summary: 'test alert' } }],
    });
    assert.equal((await b.api('POST', '/api/alertmanager', { key: null, body: alert('firing') })).status, 401);
    const fired = await b.api('POST', '/api/alertmanager', { body: alert('firing') });
    assert.deepEqual([fired.status, fired.body], [200, { accepted: 1 }]);
    await b.api('POST', '/api/alertmanager', { body: alert('firing') }); // Alertmanager repeats: still one alarm
    const [a] = (await b.api('GET', '/api/alarms?device=backend&state=active')).body as Record<string, any>[];
    assert.deepEqual([a.rule, a.severity, a.summary, a.kind], ['IotbTest', 'critical', 'test alert', 'external']);
    assert.equal((await b.api('GET', '/api/alarms?device=backend')).body.length, 1);
    await b.api('POST', '/api/alertmanager', { body: alert('resolved') });
    assert.equal((await b.api('GET', `/api/alarms/${a.id}`)).body.state, 'CLEARED_UNACK');
    const bad = await b.api('POST', '/api/alertmanager', { body: { hello: 1 } });
    assert.deepEqual([bad.status, bad.body.code], [400, 'BAD_WEBHOOK']);
  });
});
