/**
 * The Twin tab of the shipped backend flow in a real node-red process (real influxd): the twin HTTP API for
 * operators, reference devices on the embedded broker converging on their desired state, and twin changes
 * stored in device_events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceClient } from '../../nodes/lib/device-client';
import type { TwinView } from '../../nodes/lib/twin/twin-service';
import { startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';

describe('device twin API (shipped flow backend.json, Twin tab)', () => {
  let b: Backend;
  const tokens: Record<string, string> = {};
  const devices: DeviceClient[] = [];

  before(async () => {
    b = await startBackend();
    for (const id of ['tw-online', 'tw-offline', 'tw-other']) {
      const created = await b.api('POST', '/api/devices', { body: { id, type: 'sensor' } });
      assert.equal(created.status, 201);
      tokens[id] = created.body.token as string;
    }
  });
  after(async () => {
    for (const d of devices) await d.stop();
    await b?.stop();
  });

  const connect = async (id: string): Promise<DeviceClient> => {
    const d = new DeviceClient({ url: b.mqttUrl, deviceId: id, token: tokens[id], twin: true });
    devices.push(d);
    await d.ready();
    return d;
  };
  const inSync = (id: string): Promise<TwinView> =>
    eventually(`${id} reports its desired state`, async () => {
      const twin = (await b.api('GET', `/api/devices/${id}/twin`)).body as TwinView;
      return twin.desired.version > 0 && Object.keys(twin.delta).length === 0 ? twin : undefined;
    });

  it('needs the operator key', async () => {
    assert.equal((await b.api('GET', '/api/devices/tw-online/twin', { key: null })).status, 401);
    assert.equal((await b.api('GET', '/api/twins', { key: 'iotbk_wrong' })).status, 401);
    const patch = await b.api('PATCH', '/api/devices/tw-online/twin/desired', {
      key: tokens['tw-online'],
      body: { intervalMs: 1 },
    });
    assert.equal(patch.status, 401, 'a device token is not an operator key');
    assert.equal(typeof patch.body.code, 'string');
  });

  it('a desired change reaches an online device, whose reported state converges; 409 on a stale version', async () => {
    const empty = await b.api('GET', '/api/devices/tw-online/twin');
    assert.equal(empty.status, 200);
    assert.deepEqual(empty.body.desired, { state: {}, version: 0, updatedAt: {} });
    assert.equal(empty.headers.get('etag'), '"0"');
    const device = await connect('tw-online');

    const patched = await b.api('PATCH', '/api/devices/tw-online/twin/desired', {
      body: { intervalMs: 45_000, mode: 'eco' },
      headers: { 'if-match': '"0"' },
    });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.desired.version, 1);
    assert.equal(patched.headers.get('etag'), '"1"');
    const twin = await inSync('tw-online');
    assert.deepEqual(twin.reported.state, { intervalMs: 45_000, mode: 'eco' });
    assert.equal(device.telemetryIntervalMs, 45_000);

    const stale = await b.api('PATCH', '/api/devices/tw-online/twin/desired', {
      body: { mode: 'boost' },
      headers: { 'if-match': '"0"' },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.code, 'VERSION_CONFLICT');
    assert.match(stale.body.reason, /at version 1, the patch was based on version 0/);
    assert.equal((await b.api('GET', '/api/devices/tw-online/twin')).body.desired.state.mode, 'eco');
  });

  it('an offline device converges once it connects', async () => {
    // The media type of RFC 7386 arrives as text; the node parses it.
    const patched = await b.api('PATCH', '/api/devices/tw-offline/twin/desired', {
      raw: JSON.stringify({ setpoint: 19.5 }),
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    assert.equal(patched.status, 200);
    assert.deepEqual(patched.body.delta, { setpoint: 19.5 });
    const listed = await b.api('GET', '/api/twins?where=delta');
    assert.deepEqual(
      listed.body.twins.map((t: { deviceId: string }) => t.deviceId),
      ['tw-offline'],
    );
    const device = await connect('tw-offline');
    await inSync('tw-offline');
    assert.deepEqual(device.config, { setpoint: 19.5 });
    assert.equal((await b.api('GET', '/api/twins?where=delta')).body.total, 0);
  });

  it('refuses bad requests with {code, reason}', async () => {
    // Deeper than a twin document may nest (8 levels), though well within what the HTTP layer accepts.
    const nested = (depth: number): Record<string, unknown> => (depth <= 1 ? { leaf: 1 } : { n: nested(depth - 1) });
    const cases: [string, string, { body?: unknown; raw?: string; headers?: Record<string, string> }, number, string][] = [
      ['GET', '/api/devices/ghost/twin', {}, 404, 'UNKNOWN_DEVICE'],
      ['PATCH', '/api/devices/ghost/twin/desired', { body: { a: 1 } }, 404, 'UNKNOWN_DEVICE'],
      ['PATCH', '/api/devices/tw-other/twin/desired', { body: nested(9) }, 400, 'INVALID'],
      ['PATCH', '/api/devices/tw-other/twin/desired', { body: { a: 1 }, headers: { 'if-match': 'soon' } }, 400, 'INVALID'],
      ['PATCH', '/api/devices/tw-other/twin/desired', { body: { blob: 'x'.repeat(17_000) } }, 413, 'TOO_LARGE'],
      ['GET', '/api/twins?where=reported.a%20%3D%3D', {}, 400, 'INVALID'],
    ];
    for (const [method, path, opts, status, code] of cases) {
      const r = await b.api(method, path, opts);
      assert.equal(r.status, status, `${method} ${path}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.code, code);
      assert.equal(typeof r.body.reason, 'string');
    }
    assert.equal((await b.api('GET', '/api/devices/tw-other/twin')).body.desired.version, 0, 'nothing was stored');
  });

  it('twins survive kill -9 of node-red; a device changed while the backend was down converges after it', async () => {
    const patched = await b.api('PATCH', '/api/devices/tw-other/twin/desired', { body: { mode: 'away' } });
    assert.equal(patched.status, 200);
    const before = (await b.api('GET', '/api/devices/tw-online/twin')).body as TwinView;
    await b.nr.crashAndRestart();
    const after = await eventually('the twin API after the restart', async () => {
      const r = await b.api('GET', '/api/devices/tw-online/twin').catch(() => undefined);
      return r?.status === 200 ? (r.body as TwinView) : undefined;
    });
    assert.deepEqual(after.desired, before.desired);
    assert.deepEqual(after.reported, before.reported, 'the reports merged before the crash are there');
    const other = (await b.api('GET', '/api/devices/tw-other/twin')).body as TwinView;
    assert.deepEqual(other.desired.state, { mode: 'away' });
    // The connected device reconnects to the restarted broker and gets the change made meanwhile.
    assert.equal(
      (await b.api('PATCH', '/api/devices/tw-online/twin/desired', { body: { mode: 'night' } })).status,
      200,
    );
    await eventually('tw-online applies the change after the restart', () => devices[0].config.mode === 'night' || undefined);
    await inSync('tw-online');
  });

  it('stores twin changes in device_events (event twin)', async () => {
    const rows = await eventually('twin events in InfluxDB', async () => {
      const r = await b.influxql(`SELECT * FROM device_events WHERE "event" = 'twin' AND "device" = 'tw-online'`);
      return r.some((row) => row.side === 'reported') && r.some((row) => row.side === 'desired') ? r : undefined;
    });
    const desired = rows.find((r) => r.side === 'desired')!;
    assert.equal(desired.version, 1);
    assert.deepEqual(JSON.parse(desired.state as string), { intervalMs: 45_000, mode: 'eco' });
  });
});
