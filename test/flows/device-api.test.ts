import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signBody } from '../../nodes/lib/auth/authenticator';
import { deriveSigningKey } from '../../nodes/lib/registry/credentials';
import { apiClient, shippedFlow, type ApiCall } from '../support/backend';
import { closed, connectDevice, refusalCode } from '../support/mqtt-device';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { freePort } from '../support/servers';

const flows = shippedFlow('device-api.json');
const registryId = flows.find((n) => n.type === 'iotb-registry')!.id;
const SECRET = randomBytes(32).toString('hex');
const OPERATOR_KEY = `op-${randomBytes(24).toString('base64url')}`;

describe('device HTTP API (shipped flow device-api.json in a real node-red)', () => {
  let nr: NodeRedProcess;
  let mqttUrl: string;
  let api: ApiCall;
  const tokens: string[] = [];

  before(async () => {
    const mqttPort = await freePort();
    mqttUrl = `mqtt://127.0.0.1:${mqttPort}`;
    nr = await startNodeRed({
      flows,
      credentials: { [registryId]: { secret: SECRET, apiKey: OPERATOR_KEY } },
      env: { IOTB_MQTT_HOST: '127.0.0.1', IOTB_MQTT_PORT: String(mqttPort) },
    });
    api = apiClient(nr.url, OPERATOR_KEY);
    await nr.waitForOutput(/(embedded MQTT broker listening on mqtt:\/\/127\.0\.0\.1[\s\S]*){2}/);
  });
  after(() => nr?.stop());

  it('provisions devices for operators only, with 201/400/401/404/409', async () => {
    assert.equal((await api('POST', '/api/devices', { key: null, body: { type: 'sensor' } })).status, 401);
    assert.equal(
      (await api('POST', '/api/devices', { key: 'iotbk_wrong', body: { type: 'sensor' } })).status,
      401,
    );
    const created = await api('POST', '/api/devices', {
      body: { id: 'sensor-1', type: 'sensor', name: 'Roof' },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.id, 'sensor-1');
    assert.match(created.body.token, /^iotbd_/);
    tokens.push(created.body.token);
    assert.equal(
      (await api('POST', '/api/devices', { body: { id: 'sensor-1', type: 'sensor' } })).status,
      409,
    );
    const bad = await api('POST', '/api/devices', { body: { id: 'bad/id', type: 'sensor' } });
    assert.equal(bad.status, 400);
    assert.match(bad.body.reason, /device id/);
    assert.equal((await api('POST', '/api/devices', { body: { type: 'nope' } })).status, 400);
    assert.equal((await api('GET', '/api/devices/ghost')).status, 404);
    const got = await api('GET', '/api/devices/sensor-1');
    assert.equal(got.status, 200);
    assert.equal(got.body.token, undefined, 'a token is shown once, never again');
    assert.equal(got.body.online, false);
  });

  it('lists devices with presence from the embedded broker', async () => {
    const dev = await connectDevice(mqttUrl, {
      clientId: 'sensor-1',
      username: 'sensor-1',
      password: tokens[0],
    });
    try {
      const list = await api('GET', '/api/devices?limit=10');
      assert.equal(list.status, 200);
      assert.equal(list.body.total, 1);
      assert.equal(list.body.devices[0].online, true);
      assert.ok(list.body.devices[0].lastSeen > 0);
    } finally {
      await dev.endAsync();
    }
  });

  it('accepts telemetry with the device bearer token and refuses other tokens and other devices alike', async () => {
    const ok = await api('POST', '/api/devices/sensor-1/telemetry', {
      key: tokens[0],
      body: { temperature: 21.5 },
    });
    assert.equal(ok.status, 202);
    const wrong = await api('POST', '/api/devices/sensor-1/telemetry', {
      key: 'iotbd_wrong',
      body: { temperature: 1 },
    });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), 'Bearer');
    const created = await api('POST', '/api/devices', { body: { id: 'sensor-2', type: 'sensor' } });
    const foreign = await api('POST', '/api/devices/sensor-1/telemetry', {
      key: created.body.token,
      body: { temperature: 1 },
    });
    assert.deepEqual(foreign.body, wrong.body, 'same answer for a foreign device as for a wrong token');
    assert.equal(
      (await api('POST', '/api/devices/sensor-1/telemetry', { key: OPERATOR_KEY, body: {} })).status,
      401,
    );
  });

  it('accepts a signed body once, refuses its replay, and answers a wrong-length signature with 401', async () => {
    const key = deriveSigningKey(tokens[0]);
    const body = '{"temperature":22}';
    const ts = Date.now();
    const nonce = randomBytes(12).toString('base64url');
    const headers = (sig: string, n = nonce) => ({
      'x-iotb-device': 'sensor-1',
      'x-iotb-timestamp': String(ts),
      'x-iotb-nonce': n,
      'x-iotb-signature': sig,
      'content-type': 'text/plain',
    });
    const sig = signBody(key, ts, nonce, body);
    assert.equal(
      (await api('POST', '/api/devices/sensor-1/telemetry', { key: null, raw: body, headers: headers(sig) }))
        .status,
      202,
    );
    const replay = await api('POST', '/api/devices/sensor-1/telemetry', {
      key: null,
      raw: body,
      headers: headers(sig),
    });
    assert.equal(replay.status, 401);
    assert.equal(replay.body.error, 'REPLAYED');
    for (const s of ['abcd', `${sig}ff`, 'x'])
      assert.equal(
        (
          await api('POST', '/api/devices/sensor-1/telemetry', {
            key: null,
            raw: body,
            headers: headers(s, randomBytes(12).toString('base64url')),
          })
        ).status,
        401,
      );
    // a compact JSON body signed as sent also verifies after Node-RED's JSON parsing
    const n2 = randomBytes(12).toString('base64url');
    const json = await api('POST', '/api/devices/sensor-1/telemetry', {
      key: null,
      raw: body,
      headers: { ...headers(signBody(key, ts, n2, body), n2), 'content-type': 'application/json' },
    });
    assert.equal(json.status, 202);
  });

  it('rotates with a grace period and revokes: the live MQTT session ends, the old token stops working', async () => {
    const rotated = await api('POST', '/api/devices/sensor-1/token', { body: { graceS: 60 } });
    assert.equal(rotated.status, 200);
    const fresh: string = rotated.body.token;
    assert.notEqual(fresh, tokens[0]);
    for (const t of [tokens[0], fresh])
      assert.equal(
        (await api('POST', '/api/devices/sensor-1/telemetry', { key: t, body: { temperature: 1 } })).status,
        202,
      );
    const dev = await connectDevice(mqttUrl, { clientId: 'sensor-1', username: 'sensor-1', password: fresh });
    const gone = closed(dev);
    assert.ok(dev.connected, 'the session is live before the device is removed');
    assert.equal((await api('DELETE', '/api/devices/sensor-1')).status, 200);
    // Only the broker closes it: the client's keepalive (60 s) is far off, and the token is refused below.
    await gone;
    dev.end(true);
    assert.equal(
      (await api('POST', '/api/devices/sensor-1/telemetry', { key: fresh, body: {} })).status,
      401,
    );
    assert.equal(
      await refusalCode(mqttUrl, { clientId: 'sensor-1', username: 'sensor-1', password: fresh }),
      4,
    );
  });

  it('keeps every secret out of flows.json and the log', () => {
    const flowsFile = readFileSync(join(nr.userDir, 'flows.json'), 'utf8');
    const log = nr.proc.output();
    for (const s of [SECRET, OPERATOR_KEY, ...tokens]) {
      assert.equal(flowsFile.includes(s), false);
      assert.equal(log.includes(s), false);
    }
  });
});
