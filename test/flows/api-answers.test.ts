import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBackend, type ApiCall, type Backend } from '../support/backend';
import { eventually } from '../support/servers';

/**
 * The HTTP API answers every request with JSON and a status, whatever the body: docs/backend.md, HTTP API.
 * Each call carries a client timeout, so a request the server never answers fails its test instead of
 * stalling the run.
 */
describe('the backend HTTP API answers every request in JSON (real node-red with the shipped flow)', () => {
  let b: Backend;
  let token = '';
  const timeoutMs = 5000;
  const call: ApiCall = (method, path, opts = {}) => b.api(method, path, { timeoutMs, ...opts });
  const telemetry = (raw: string | Uint8Array<ArrayBuffer>, headers?: Record<string, string>) =>
    call('POST', '/api/devices/api-1/telemetry', { key: token, raw, ...(headers ? { headers } : {}) });

  /** A `{code, reason}` answer with this status: JSON, and nothing of the server's insides in it. */
  const assertRefusal = (
    res: { status: number; body: any; headers: Headers; text: string },
    status: number,
    code: string,
  ): void => {
    assert.equal(res.status, status, res.text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(res.body.code, code, res.text);
    assert.equal(typeof res.body.reason, 'string');
    assert.doesNotMatch(res.text, /\n\s+at |node_modules|\/work\/|<html|<pre/i, 'no stack trace or server path');
  };

  /** iotb_rejected_total for one stage and code, from GET /metrics. */
  const rejected = async (stage: string, code: string): Promise<number> => {
    const text = (await call('GET', '/metrics', { key: null })).text;
    const line = text.split('\n').find((l) => l.startsWith(`iotb_rejected_total{stage="${stage}",code="${code}"}`));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  before(async () => {
    b = await startBackend();
    const created = await call('POST', '/api/devices', { body: { id: 'api-1', type: 'sensor' } });
    assert.equal(created.status, 201);
    token = created.body.token;
  });
  after(async () => {
    await b?.stop();
  });

  it('malformed JSON: 400 PARSE on an operator route (even without a key) and on device telemetry, counted', async () => {
    const before = await rejected('api', 'PARSE');
    assertRefusal(await call('POST', '/api/devices', { key: null, raw: '{"id": "x",' }), 400, 'PARSE');
    assertRefusal(await call('POST', '/api/kill-switch', { raw: '{on: true}' }), 400, 'PARSE');
    assert.equal(await rejected('api', 'PARSE'), before + 2);

    const validateBefore = await rejected('validate', 'PARSE');
    assertRefusal(await telemetry('{"temperature": 1'), 400, 'PARSE');
    assert.equal(await rejected('validate', 'PARSE'), validateBefore + 1, 'the device payload is judged by iotb-validate');
  });

  it('numbers out of range (1e400), NaN and Infinity: 400', async () => {
    assertRefusal(await telemetry('{"temperature": 1e400}'), 400, 'NUMBER');
    assertRefusal(
      await call('POST', '/api/devices/api-1/commands', { raw: '{"name": "set-interval", "params": {"intervalMs": 1e400}}' }),
      400,
      'NUMBER',
    );
    assertRefusal(await telemetry('{"temperature": NaN}'), 400, 'PARSE');
    assertRefusal(await telemetry('{"temperature": Infinity}'), 400, 'PARSE');
    assertRefusal(await call('POST', '/api/kill-switch', { raw: '{"on": -Infinity}' }), 400, 'PARSE');
  });

  it('a 100,000-deep array: 400 TOO_DEEP, on telemetry and on an operator route', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    assertRefusal(await telemetry(deep), 400, 'TOO_DEEP');
    assertRefusal(await call('POST', '/api/devices', { raw: `{"id": ${deep}}` }), 400, 'TOO_DEEP');
    // Still answering afterwards.
    assert.equal((await call('GET', '/api/health', { key: null })).status, 200);
  });

  it('a body without a JSON Content-Type (none, or curl -d form encoding): 415', async () => {
    const body = new TextEncoder().encode('{"temperature": 1}');
    assertRefusal(await telemetry(body), 415, 'UNSUPPORTED_MEDIA_TYPE');
    assertRefusal(
      await telemetry('{"temperature": 1}', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    assertRefusal(
      await call('POST', '/api/devices', { raw: 'id=x&type=sensor', headers: { 'content-type': 'text/plain' } }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
  });

  it('an oversized body: 413 TOO_LARGE from the declared length, before it is read', async () => {
    const huge = new TextEncoder().encode(`{"pad": "${'x'.repeat(6 * 1024 * 1024)}"}`);
    const res = await call('POST', '/api/devices', { raw: huge, headers: { 'content-type': 'application/json' } });
    assertRefusal(res, 413, 'TOO_LARGE');
    // A telemetry body above iotb-validate's 256 KiB but within the API limit: iotb-validate refuses it.
    assertRefusal(await telemetry(`{"temperature": 1, "pad": "${'x'.repeat(300 * 1024)}"}`), 413, 'TOO_LARGE');
  });

  it('an unknown route under /api: 404 NOT_FOUND in JSON, counted', async () => {
    const before = await rejected('api', 'NOT_FOUND');
    assertRefusal(await call('GET', '/api/no-such-route', { key: null }), 404, 'NOT_FOUND');
    assertRefusal(await call('DELETE', '/api/devices', {}), 404, 'NOT_FOUND');
    assertRefusal(await call('POST', '/api/nothing/here', { body: { a: 1 } }), 404, 'NOT_FOUND');
    assert.equal(await rejected('api', 'NOT_FOUND'), before + 3);
  });

  it('CORS: /api does not inherit the editor API\'s "Access-Control-Allow-Origin: *"', async () => {
    const origin = { origin: 'http://elsewhere.example' };
    const health = await call('GET', '/api/health', { key: null, headers: origin });
    assert.equal(health.status, 200);
    assert.equal(health.headers.get('access-control-allow-origin'), null);
    const preflight = await call('OPTIONS', '/api/devices', {
      key: null,
      headers: { ...origin, 'access-control-request-method': 'POST' },
    });
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);
    // The editor's own API keeps its CORS (Node-RED's behaviour, unchanged).
    const editor = await call('GET', '/auth/login', { key: null, headers: origin });
    assert.equal(editor.headers.get('access-control-allow-origin'), '*');
  });

  it('one HTTP batch of 5,000 bad readings: one answer naming the count, no error line per reading', async () => {
    const batch = JSON.stringify(Array.from({ length: 5000 }, (_, i) => ({ temperature: 1000 + i })));
    // Its answer is one of 5,000 refusals that each go on to device_events and the alarm node, so on a loaded
    // machine it may need longer than the others; a second answer attempt would still show in the log.
    const res = await call('POST', '/api/devices/api-1/telemetry', { key: token, raw: batch, timeoutMs: 30_000 });
    assertRefusal(res, 400, 'SCHEMA');
    assert.equal(res.body.details.refused, 5000);
    assert.equal(res.body.details.accepted, 0);
    await eventually('the 5,000 refusals in device_events', async () => {
      const rows = await b.influxql(
        `SELECT count(reason) FROM device_events WHERE device = 'api-1' AND event = 'rejected' AND code = 'SCHEMA'`,
      );
      return (rows[0]?.count as number) >= 5000 ? true : undefined;
    });
    assert.doesNotMatch(b.nr.proc.output(), /ERR_HTTP_HEADERS_SENT/);
  });

  it('a telemetry query with from=-1 or another non-date: 400 INVALID_QUERY', async () => {
    for (const q of ['from=-1', 'to=-5', 'from=1e3', 'from=99999999999999999']) {
      assertRefusal(await call('GET', `/api/devices/api-1/telemetry?${q}`), 400, 'INVALID_QUERY');
    }
    assert.equal((await call('GET', '/api/devices/api-1/telemetry?from=0')).status, 200);
    assert.equal((await call('GET', '/api/devices/api-1/telemetry?from=2026-01-01T00:00:00Z')).status, 200);
  });

  it('cancel: 200 with the command CANCELED; 409 once it is final; 404 for an unknown id', async () => {
    const queued = await call('POST', '/api/devices/api-1/commands', { body: { name: 'reboot' } });
    assert.equal(queued.status, 202, queued.text);
    const canceled = await call('POST', `/api/commands/${queued.body.id}/cancel`);
    assert.equal(canceled.status, 200, canceled.text);
    assert.equal(canceled.body.id, queued.body.id);
    assert.equal(canceled.body.state, 'CANCELED');
    assert.deepEqual(
      canceled.body.history.map((h: { state: string }) => h.state),
      ['QUEUED', 'CANCELED'],
    );
    assertRefusal(await call('POST', `/api/commands/${queued.body.id}/cancel`), 409, 'NOT_CANCELABLE');
    assertRefusal(await call('POST', '/api/commands/no-such-command/cancel'), 404, 'NOT_FOUND');
    assertRefusal(await call('POST', `/api/commands/${queued.body.id}/cancel`, { key: null }), 401, 'UNAUTHORIZED');
  });

  it("a device's commands: pending by default, by state on request; 400 for an unknown state, 404 for an unknown device", async () => {
    const ids: string[] = [];
    for (const name of ['reboot', 'reboot']) {
      const r = await call('POST', '/api/devices/api-1/commands', { body: { name } });
      assert.equal(r.status, 202, r.text);
      ids.push(r.body.id);
    }
    const pending = await call('GET', '/api/devices/api-1/commands');
    assert.equal(pending.status, 200, pending.text);
    assert.equal(pending.body.deviceId, 'api-1');
    assert.equal(pending.body.state, 'pending');
    assert.deepEqual(
      pending.body.commands.map((c: { id: string; state: string }) => [c.id, c.state]),
      ids.map((id) => [id, 'QUEUED']),
    );
    assert.equal((await call('POST', `/api/commands/${ids[0]}/cancel`)).status, 200);
    const after = await call('GET', '/api/devices/api-1/commands?state=pending');
    assert.deepEqual(
      after.body.commands.map((c: { id: string }) => c.id),
      [ids[1]],
    );
    const canceled = await call('GET', '/api/devices/api-1/commands?state=CANCELED');
    assert.ok(canceled.body.commands.some((c: { id: string }) => c.id === ids[0]));
    assert.ok(canceled.body.commands.every((c: { state: string }) => c.state === 'CANCELED'));
    assertRefusal(await call('GET', '/api/devices/api-1/commands?state=queued'), 400, 'INVALID_QUERY');
    assertRefusal(await call('GET', '/api/devices/nobody/commands'), 404, 'UNKNOWN_DEVICE');
  });

  it('kill-switch state: GET /api/kill-switch follows POST /api/kill-switch', async () => {
    const off = await call('GET', '/api/kill-switch');
    assert.equal(off.status, 200, off.text);
    assert.equal(off.body.killSwitch.on, false);
    assert.equal(typeof off.body.safeModeDevices, 'number');
    assert.equal((await call('POST', '/api/kill-switch', { body: { on: true, reason: 'maintenance' } })).status, 200);
    const on = await call('GET', '/api/kill-switch');
    assert.equal(on.body.killSwitch.on, true);
    assert.equal(on.body.killSwitch.reason, 'maintenance');
    assert.equal(typeof on.body.killSwitch.at, 'number');
    // Turning it on canceled the queued command of the previous test.
    assert.deepEqual((await call('GET', '/api/devices/api-1/commands')).body.commands, []);
    assert.equal((await call('POST', '/api/kill-switch', { body: { on: false } })).status, 200);
    assert.equal((await call('GET', '/api/kill-switch')).body.killSwitch.on, false);
    assertRefusal(await call('GET', '/api/kill-switch', { key: null }), 401, 'UNAUTHORIZED');
  });
});
