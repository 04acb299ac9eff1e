import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DeviceClient } from '../../nodes/lib/device-client';
import { startBackend, type Backend } from '../support/backend';
import { eventually } from '../support/servers';
import type { HealthReport } from '../../nodes/lib/health';
import { closed, refusalCode } from '../support/mqtt-device';

interface CommandView {
  id: string;
  deviceId: string;
  state: string;
  history: { state: string; at: number }[];
  result?: unknown;
}

describe('flows/backend.json in a real node-red process with influxd', () => {
  let b: Backend;
  const tokens: Record<string, string> = {};
  const clients: DeviceClient[] = [];

  // Short, so the heartbeat timeout of an HTTP-only device can be awaited; MQTT devices hold a session instead.
  const presenceTimeoutS = 3;
  before(async () => {
    b = await startBackend([], { IOTB_PRESENCE_TIMEOUT_S: String(presenceTimeoutS) });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.stop().catch(() => undefined)));
    await b?.stop();
  });

  const device = async (id: string): Promise<DeviceClient> => {
    const c = new DeviceClient({ url: b.mqttUrl, deviceId: id, token: tokens[id] });
    clients.push(c);
    await c.ready();
    return c;
  };

  it('refuses operator calls without a valid API key with 401 and a {code, reason} body', async () => {
    const none = await b.api('GET', '/api/devices', { key: null });
    assert.equal(none.status, 401);
    assert.equal(none.body.code, 'UNAUTHORIZED');
    assert.equal(typeof none.body.reason, 'string');
    assert.equal((await b.api('GET', '/api/devices', { key: 'iotbk_not-a-key' })).status, 401);
  });

  it('provisions over HTTP; a device publishes over MQTT; readings come back from InfluxDB', async () => {
    const created = await b.api('POST', '/api/devices', { body: { id: 'dev-1', type: 'sensor', name: 'Roof' } });
    assert.equal(created.status, 201);
    assert.match(created.body.token, /^iotbd_/);
    tokens['dev-1'] = created.body.token;
    const dup = await b.api('POST', '/api/devices', { body: { id: 'dev-1', type: 'sensor' } });
    assert.equal(dup.status, 409);
    assert.equal(typeof dup.body.code, 'string');

    const dev = await device('dev-1');
    const listed = await b.api('GET', '/api/devices');
    assert.equal(listed.status, 200);
    assert.equal(listed.body.devices.find((d: { id: string }) => d.id === 'dev-1').online, true);
    const one = await b.api('GET', '/api/devices/dev-1');
    assert.equal(one.body.online, true);
    assert.equal(typeof one.body.lastSeen, 'number');

    const t0 = Date.now() - 5000;
    await dev.sendTelemetry({ ts: t0, temperature: 21.5, humidity: 40 });
    await dev.sendTelemetry({ ts: t0 + 1000, temperature: 22, humidity: 41 });
    await dev.sendTelemetry({ ts: t0 + 2000, temperature: 999 }); // above the type's maximum: rejected

    const got = await eventually('two readings in InfluxDB', async () => {
      const r = await b.api('GET', `/api/devices/dev-1/telemetry?field=temperature&from=${t0 - 1}`);
      assert.equal(r.status, 200);
      return r.body.readings.length >= 2 ? (r.body as { readings: { time: number; temperature: number }[] }) : undefined;
    });
    assert.deepEqual(
      got.readings.map((r) => [r.time, r.temperature]),
      [
        [t0, 21.5],
        [t0 + 1000, 22],
      ],
    );
    const rejected = await eventually('the rejection in device_events', async () => {
      const rows = await b.influxql(`SELECT * FROM device_events WHERE event = 'rejected' AND device = 'dev-1'`);
      return rows.length > 0 ? rows : undefined;
    });
    assert.equal(rejected[0].stage, 'validate');
    assert.equal(rejected[0].code, 'SCHEMA');
    assert.match(String(rejected[0].reason), /temperature/);
    const connected = await b.influxql(`SELECT * FROM device_events WHERE event = 'connected' AND device = 'dev-1'`);
    assert.ok(connected.length >= 1, 'connect events are stored');

    const badQuery = await b.api('GET', '/api/devices/dev-1/telemetry?field=a%22b');
    assert.equal(badQuery.status, 400);
    assert.equal(badQuery.body.code, 'INVALID_QUERY');
    assert.equal((await b.api('GET', '/api/devices/ghost/telemetry')).status, 404);
  });

  it('stores a back-fill batch with each reading at its own time; a bad element is refused by its index', async () => {
    const key = tokens['dev-1'];
    const t0 = Date.now() - 600_000;
    const batch = [
      { ts: t0, temperature: 10.5 },
      { ts: t0 + 1000, temperature: 999 },
      { ts: t0 + 2000, temperature: 11.5 },
    ];
    const res = await b.api('POST', '/api/devices/dev-1/telemetry', { key, body: batch });
    // The answer is the refusal of element 1; the other readings are accepted (docs/backend.md).
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'SCHEMA');
    assert.equal(res.body.details.index, 1);
    const stored = await eventually('the batch in InfluxDB', async () => {
      const rows = await b.influxql(
        `SELECT temperature FROM telemetry WHERE device = 'dev-1' AND time >= ${t0}ms AND time <= ${t0 + 2000}ms`,
      );
      return rows.length >= 2 ? rows : undefined;
    });
    assert.deepEqual(
      stored.map((r) => [r.time, r.temperature]),
      [
        [t0, 10.5],
        [t0 + 2000, 11.5],
      ],
    );
  });

  it('ingests over HTTP with the device token: 202, 400 with reasons, 401, 413, 429', async () => {
    const key = tokens['dev-1'];
    const ok = await b.api('POST', '/api/devices/dev-1/telemetry', { key, body: { temperature: 23.25 } });
    assert.equal(ok.status, 202);
    assert.deepEqual(ok.body, { accepted: 1 });

    const bad = await b.api('POST', '/api/devices/dev-1/telemetry', { key, body: { temperature: 'hot' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'SCHEMA');
    assert.match(bad.body.reason, /temperature/);
    assert.ok(Array.isArray(bad.body.details.violations));

    const notJson = await b.api('POST', '/api/devices/dev-1/telemetry', {
      key,
      raw: '{"temperature": 1',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.code, 'PARSE');

    const wrong = await b.api('POST', '/api/devices/dev-1/telemetry', { key: 'iotbd_wrong', body: { temperature: 1 } });
    assert.equal(wrong.status, 401);
    const operator = await b.api('POST', '/api/devices/dev-1/telemetry', { body: { temperature: 1 } });
    assert.equal(operator.status, 401, 'an operator key is not a device token');

    const big = await b.api('POST', '/api/devices/dev-1/telemetry', {
      key,
      body: { temperature: 1, pad: 'x'.repeat(300 * 1024) },
    });
    assert.equal(big.status, 413);
    assert.equal(big.body.code, 'TOO_LARGE');

    const answers = await Promise.all(
      Array.from({ length: 40 }, () =>
        b.api('POST', '/api/devices/dev-1/telemetry', { key, body: { temperature: 20 } }),
      ),
    );
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(limited.length > 0, 'a burst above the per-device rate gets 429');
    assert.equal(limited[0].body.code, 'RATE_LIMITED');
    assert.equal(limited[0].headers.get('retry-after'), '1');
    assert.ok(answers.some((a) => a.status === 202));
  });

  it('tracks presence of an HTTP-only device: online after a reading, offline after the heartbeat timeout', async () => {
    const created = await b.api('POST', '/api/devices', { body: { id: 'http-1', type: 'sensor' } });
    assert.equal(created.status, 201);
    const key = created.body.token as string;
    const presenceOf = async (): Promise<{ online: boolean; lastSeen: number }> => {
      const one = await b.api('GET', '/api/devices/http-1');
      assert.equal(one.status, 200);
      const listed = await b.api('GET', '/api/devices');
      const inList = listed.body.devices.find((d: { id: string }) => d.id === 'http-1');
      assert.deepEqual({ online: inList.online, lastSeen: inList.lastSeen }, { online: one.body.online, lastSeen: one.body.lastSeen });
      return one.body as { online: boolean; lastSeen: number };
    };
    const unseen = await presenceOf();
    assert.equal(unseen.online, false, 'never seen: offline');
    assert.equal(unseen.lastSeen, 0);

    const before = Date.now();
    const ok = await b.api('POST', '/api/devices/http-1/telemetry', { key, body: { temperature: 19.5 } });
    assert.equal(ok.status, 202);
    const seen = await presenceOf();
    assert.equal(seen.online, true);
    assert.ok(seen.lastSeen >= before && seen.lastSeen <= Date.now(), `lastSeen ${seen.lastSeen} is the reading's arrival`);

    const wrong = await b.api('POST', '/api/devices/http-1/telemetry', { key: 'iotbd_wrong', body: { temperature: 1 } });
    assert.equal(wrong.status, 401);
    assert.equal((await presenceOf()).lastSeen, seen.lastSeen, 'an unauthenticated request does not count');

    // One read per probe: the list and the single-device answer could straddle the timeout's moment.
    const onlineNow = async (): Promise<boolean> =>
      ((await b.api('GET', '/api/devices/http-1')).body as { online: boolean }).online;
    await eventually('the heartbeat timeout', async () => ((await onlineNow()) ? undefined : true));
    const gone = await presenceOf();
    assert.equal(gone.lastSeen, seen.lastSeen, 'offline keeps the last-seen time');
    assert.ok(Date.now() - seen.lastSeen >= presenceTimeoutS * 1000);

    const events = await eventually('online and offline in device_events', async () => {
      const rows = await b.influxql(`SELECT * FROM device_events WHERE kind = 'presence' AND device = 'http-1'`);
      return rows.length >= 2 ? rows : undefined;
    });
    assert.deepEqual(
      events.map((r) => [r.event, r.reason]),
      [
        ['online', 'seen'],
        ['offline', 'heartbeat timeout'],
      ],
    );
  });

  it('runs a command round trip to SUCCEEDED through POST and GET', async () => {
    const posted = await b.api('POST', '/api/devices/dev-1/commands', { body: { name: 'led', params: { on: true } } });
    assert.equal(posted.status, 202);
    assert.equal(posted.body.state, 'QUEUED');
    const id = posted.body.id as string;
    const done = await eventually('the command to finish', async () => {
      const r = await b.api('GET', `/api/commands/${encodeURIComponent(id)}`);
      assert.equal(r.status, 200);
      return r.body.state === 'SUCCEEDED' ? (r.body as CommandView) : undefined;
    });
    assert.equal(done.deviceId, 'dev-1');
    assert.deepEqual(done.result, { on: true });
    assert.deepEqual(
      done.history.map((h) => h.state),
      ['QUEUED', 'SENT', 'DELIVERED', 'SUCCEEDED'],
    );
    const notAllowed = await b.api('POST', '/api/devices/dev-1/commands', { body: { name: 'self-destruct' } });
    assert.equal(notAllowed.status, 400);
    assert.equal(notAllowed.body.code, 'COMMAND_NOT_ALLOWED');
    const unknown = await b.api('GET', '/api/commands/no-such-command');
    assert.equal(unknown.status, 404);
    const stored = await eventually('command transitions in InfluxDB', async () => {
      const rows = await b.influxql(`SELECT * FROM commands WHERE "id" = '${id}'`);
      return rows.length >= 4 ? rows : undefined;
    });
    assert.ok(stored.some((r) => r.state === 'SUCCEEDED'));
  });

  it('kill switch and per-device safe mode refuse new commands until turned off', async () => {
    const bad = await b.api('POST', '/api/kill-switch', { body: { on: 'yes' } });
    assert.equal(bad.status, 400);
    const on = await b.api('POST', '/api/kill-switch', { body: { on: true, reason: 'test' } });
    assert.equal(on.status, 200);
    assert.deepEqual(on.body, { killSwitch: { on: true, reason: 'test' } });
    const refused = await b.api('POST', '/api/devices/dev-1/commands', { body: { name: 'reboot' } });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.code, 'KILL_SWITCH');
    assert.equal((await b.api('POST', '/api/kill-switch', { body: { on: false } })).status, 200);

    assert.equal((await b.api('POST', '/api/devices/ghost/safe-mode', { body: { on: true } })).status, 404);
    const safe = await b.api('POST', '/api/devices/dev-1/safe-mode', { body: { on: true } });
    assert.equal(safe.status, 200);
    assert.deepEqual(safe.body, { deviceId: 'dev-1', safeMode: { on: true } });
    const inSafe = await b.api('POST', '/api/devices/dev-1/commands', { body: { name: 'reboot' } });
    assert.equal(inSafe.status, 409);
    assert.equal(inSafe.body.code, 'SAFE_MODE');
    assert.equal((await b.api('POST', '/api/devices/dev-1/safe-mode', { body: { on: false } })).status, 200);
    const again = await b.api('POST', '/api/devices/dev-1/commands', { body: { name: 'led', params: { on: false } } });
    assert.equal(again.status, 202);
  });

  it('rotates a token (both valid during the grace period) and revocation disconnects the live session', async () => {
    const old = tokens['dev-1'];
    const rotated = await b.api('POST', '/api/devices/dev-1/token');
    assert.equal(rotated.status, 200);
    const fresh = rotated.body.token as string;
    assert.notEqual(fresh, old);
    for (const key of [old, fresh])
      assert.equal(
        (await b.api('POST', '/api/devices/dev-1/telemetry', { key, body: { temperature: 20 } })).status,
        202,
        'both tokens work during the grace period',
      );

    const live = clients.find((c) => c.deviceId === 'dev-1' && c.client.connected);
    assert.ok(live, 'the reference device is still connected');
    const closedAt = closed(live.client);
    const revoked = await b.api('DELETE', '/api/devices/dev-1');
    assert.equal(revoked.status, 200);
    // The broker closes the session it authenticated with the revoked token; the refusal below shows why.
    await closedAt;
    await eventually('the revoked device to show offline', async () => {
      const r = await b.api('GET', '/api/devices/dev-1');
      return r.body.online === false ? true : undefined;
    });
    assert.equal(await refusalCode(b.mqttUrl, { clientId: 'dev-1', username: 'dev-1', password: fresh }), 4);
    assert.equal(
      (await b.api('POST', '/api/devices/dev-1/telemetry', { key: fresh, body: { temperature: 20 } })).status,
      401,
    );
  });

  it('reports health (broker, database, spool depth) and Prometheus metrics', async () => {
    const h = await b.api('GET', '/api/health', { key: null });
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.equal(h.body.broker.status, 'ok');
    assert.equal(h.body.database.status, 'ok');
    assert.equal(typeof h.body.spool.depth, 'number');

    const m = await b.api('GET', '/metrics', { key: null });
    assert.equal(m.status, 200);
    assert.match(m.body, /iotb_rejected_total\{stage="validate",code="SCHEMA"\} [1-9]/);
    assert.match(m.body, /iotb_rejected_total\{stage="auth",code="RATE_LIMITED"\} [1-9]/);
    assert.match(m.body, /iotb_commands_transitions_total\{state="SUCCEEDED"\} [1-9]/);
  });

  it('health turns 503 with a growing spool when InfluxDB is down', async () => {
    await b.influx.pause();
    try {
      // A fresh device; HTTP ingest is accepted into the spool while the database is away.
      const created = await b.api('POST', '/api/devices', { body: { id: 'dev-2', type: 'sensor' } });
      tokens['dev-2'] = created.body.token;
      const ok = await b.api('POST', '/api/devices/dev-2/telemetry', { key: tokens['dev-2'], body: { temperature: 5 } });
      assert.equal(ok.status, 202);
      const h = await eventually('health to report the outage', async () => {
        const r = await b.api('GET', '/api/health', { key: null });
        return r.status === 503 ? (r.body as HealthReport) : undefined;
      });
      assert.equal(h.database.status, 'degraded');
      assert.ok(h.spool.depth >= 1);
    } finally {
      await b.influx.start();
    }
    await eventually('the spool to drain', async () => {
      const r = await b.api('GET', '/api/health', { key: null });
      return r.status === 200 && r.body.spool.depth === 0 ? true : undefined;
    }, 30_000);
  });
});
