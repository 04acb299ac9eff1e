import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import mqttPacket from 'mqtt-packet';
import { DeviceBroker } from '../../nodes/lib/broker/broker';
import type { DeviceMessage } from '../../nodes/lib/device-contracts';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import type { SecurityEvent } from '../../nodes/lib/security-events';
import { nextEvent } from '../support/events';
import { closed, connectDevice, grants, refusalCode } from '../support/mqtt-device';
import { freePort, repoRoot, tempDir } from '../support/servers';

const run = promisify(execFile);

/** mosquitto_pub as device `id` (client id and user name) with `password`, to its status topic. */
function mosquittoPub(port: number, id: string, password: string, message: string, extra: string[] = []) {
  const target = ['-h', '127.0.0.1', '-p', String(port), '-t', `devices/${id}/status`];
  return run('mosquitto_pub', [...target, '-i', id, '-u', id, '-P', password, '-m', message, ...extra]);
}
const SECRET = 'broker-test-registry-secret-0123456789abcdef';

/** A CONNECT packet as bytes, for raw-socket floods. */
function connectBytes(clientId: string, username: string, password: string): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 30,
    username,
    password: Buffer.from(password),
  });
}

/** Sends raw bytes from `localAddress`; resolves with the first reply bytes (or empty) once the server closes. */
function rawExchange(port: number, bytes: Buffer, localAddress = '127.0.0.1'): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = netConnect({ port, host: '127.0.0.1', localAddress });
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => resolve(Buffer.concat(chunks)));
    s.on('connect', () => s.write(bytes));
  });
}

describe('embedded broker (aedes) with registry auth and ACLs', () => {
  let dir: ReturnType<typeof tempDir>;
  let clock = Date.now();
  let registry: Registry;
  let broker: DeviceBroker;
  let url: string;
  let port: number;
  const tokens: Record<string, string> = {};
  const security: SecurityEvent[] = [];

  before(async () => {
    dir = tempDir('broker');
    registry = new Registry(new FileDeviceStore(join(dir.path, 'registry.json')), SECRET, {
      now: () => clock,
    });
    registry.putType({ name: 'thermo' });
    for (const id of ['dev-a', 'dev-b', 'dev-off', 'dev-rev', 'dev-rot', 'dev-kick', 'dev-cmd', 'dev-legit'])
      tokens[id] = registry.createDevice({ id, type: 'thermo' }).token;
    registry.setEnabled('dev-off', false);
    port = await freePort();
    url = `mqtt://127.0.0.1:${port}`;
    broker = await DeviceBroker.start(
      {
        registry,
        limits: {
          maxPacketBytes: 64 * 1024,
          connectRatePerIp: 200,
          connectBurstPerIp: 200,
          // The flood below is to be dropped at accept (bounded state), not queued for its turn.
          connectQueueMs: 0,
          maxTrackedKeys: 500,
        },
      },
      { host: '127.0.0.1', port },
    );
    broker.on('security', (ev: SecurityEvent) => security.push(ev));
  });

  after(async () => {
    await broker.close();
    registry.close();
    dir.remove();
  });

  const auth = (id: string, password = tokens[id]) => ({ clientId: id, username: id, password });

  it('lets a provisioned device connect with its token and publish; the message carries msg.device', async () => {
    const got = nextEvent<DeviceMessage>(broker, 'message');
    const online = nextEvent<string>(broker, 'online');
    const c = await connectDevice(url, auth('dev-a'));
    assert.equal(await online, 'dev-a');
    assert.equal(broker.isOnline('dev-a'), true);
    await c.publishAsync('devices/dev-a/telemetry', '{"t":21.5}', { qos: 1 });
    const m = await got;
    assert.equal(m.topic, 'devices/dev-a/telemetry');
    assert.equal(m.kind, 'telemetry');
    assert.equal(m.device.id, 'dev-a');
    assert.equal(m.device.type, 'thermo');
    assert.equal(m.payload.toString(), '{"t":21.5}');
    const p = broker.getPresence('dev-a');
    assert.equal(p.online, true);
    assert.ok(p.lastSeen > 0);
    const offline = nextEvent<string>(broker, 'offline');
    await c.endAsync();
    assert.equal(await offline, 'dev-a');
    assert.equal(broker.getPresence('dev-a').online, false);
  });

  it('accepts mosquitto_pub with device credentials and refuses it with a wrong token', async () => {
    const got = nextEvent<DeviceMessage>(broker, 'message', (m) => m.device.id === 'dev-b');
    await mosquittoPub(port, 'dev-b', tokens['dev-b'], '{"fw":"1.2"}', ['-q', '1']);
    const m = await got;
    assert.equal(m.kind, 'status');
    assert.equal(m.payload.toString(), '{"fw":"1.2"}');
    await assert.rejects(mosquittoPub(port, 'dev-b', 'iotbd_wrong', 'x'), (err: { stderr: string }) =>
      /bad user name or password/i.test(err.stderr),
    );
  });

  it('refuses wrong token, unknown device, disabled device, revoked token and client id != username with the right CONNACK codes', async () => {
    assert.equal(await refusalCode(url, auth('dev-a', 'iotbd_wrong')), 4);
    assert.equal(await refusalCode(url, { clientId: 'ghost', username: 'ghost', password: 'iotbd_x' }), 4);
    assert.equal(await refusalCode(url, { clientId: 'dev-a', username: 'dev-a' }), 4);
    assert.equal(
      await refusalCode(url, auth('dev-off')),
      5,
      'disabled device with a valid token: not authorized',
    );
    assert.equal(
      await refusalCode(url, { ...auth('dev-a'), clientId: 'dev-b' }),
      2,
      'client id differs from username',
    );
    const { token } = registry.rotateToken('dev-rev', 0);
    registry.revokeTokens('dev-rev');
    assert.equal(await refusalCode(url, auth('dev-rev', token)), 4, 'revoked token');
    const reasons = security.filter((e) => e.event === 'auth_failure').map((e) => e.reason);
    for (const r of ['bad_token', 'unknown_device', 'no_password', 'disabled', 'client_id_mismatch'])
      assert.ok(reasons.includes(r), `security event for ${r}`);
    assert.equal(JSON.stringify(security).includes('iotbd_'), false, 'no secret in security events');
  });

  it('refuses ids containing + # / or NUL', async () => {
    for (const id of ['dev+a', 'dev#', 'dev/a', '+', '#'])
      assert.equal(await refusalCode(url, { clientId: id, username: id, password: 'x' }), 2, id);
    const nul = await refusalCode(url, { clientId: 'dev\u0000a', username: 'dev\u0000a', password: 'x' });
    assert.ok(nul === 2 || nul === 'CLOSED', `NUL id refused (got ${nul})`);
  });

  it("confines a device to its own topics: no publish or subscribe on B's topics, no #, +/#, $SYS/#", async () => {
    const a = await connectDevice(url, auth('dev-a'));
    try {
      assert.deepEqual(await grants(a, ['devices/dev-a/commands']), [1]);
      assert.deepEqual(
        await grants(a, [
          'devices/dev-b/commands',
          '#',
          '+/#',
          '$SYS/#',
          'devices/+/commands',
          'devices/dev-a/#',
          'devices/dev-a/telemetry',
        ]),
        [128, 128, 128, 128, 128, 128, 128],
      );
      const leaked: DeviceMessage[] = [];
      const onMessage = (m: DeviceMessage): void => void leaked.push(m);
      broker.on('message', onMessage);
      const gone = closed(a);
      a.publish('devices/dev-b/telemetry', '{"t":1}', { qos: 1 });
      await gone; // a publish outside its ACL ends the session (MQTT 3.1.1 has no per-publish refusal)
      broker.off('message', onMessage);
      assert.deepEqual(leaked, []);
      assert.ok(
        security.some(
          (e) => e.event === 'acl_denied' && e.reason === 'publish_topic' && e.deviceId === 'dev-a',
        ),
      );
    } finally {
      a.end(true);
    }
  });

  it('mosquitto_sub: wildcard, $SYS and foreign subscriptions are denied; its own commands topic receives', async () => {
    const sub = (topic: string) =>
      run('mosquitto_sub', [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-i',
        'dev-a',
        '-u',
        'dev-a',
        '-P',
        tokens['dev-a'],
        '-t',
        topic,
        '-C',
        '1',
        '-W',
        '5',
      ]);
    for (const topic of ['#', '+/#', '$SYS/#', 'devices/dev-b/commands', 'devices/+/telemetry']) {
      const r = await sub(topic);
      assert.match(r.stderr, /All subscription requests were denied/, topic);
    }
    // publish once the broker has granted its SUBSCRIBE
    const subscribed = nextEvent<string>(broker, 'subscribed');
    const own = sub('devices/dev-a/commands');
    assert.equal(await subscribed, 'dev-a');
    await broker.publishToDevice('dev-a', 'commands', '{"id":"c9","name":"reboot"}', { qos: 1 });
    assert.equal((await own).stdout.trim(), '{"id":"c9","name":"reboot"}');
  });

  it('says a device can receive commands only once its SUBSCRIBE to its own commands topic is granted', async () => {
    const online = nextEvent<string>(broker, 'online');
    const c = await connectDevice(url, auth('dev-a'));
    try {
      assert.equal(await online, 'dev-a');
      assert.equal(broker.isSubscribed('dev-a'), false, 'connected, not yet listening');
      await assert.rejects(c.subscribeAsync('devices/dev-b/commands', { qos: 1 }), /Subscribe error/); // not its own
      assert.equal(broker.isSubscribed('dev-a'), false);
      const subscribed = nextEvent<string>(broker, 'subscribed');
      await c.subscribeAsync('devices/dev-a/commands', { qos: 1 });
      assert.equal(await subscribed, 'dev-a');
      assert.equal(broker.isSubscribed('dev-a'), true);
    } finally {
      await c.endAsync();
    }
    assert.equal(broker.isSubscribed('dev-a'), false);
  });

  it('refuses a keepalive above the limit, or none at all', async () => {
    assert.equal(await refusalCode(url, { ...auth('dev-a'), keepalive: 0 }), 6);
    assert.equal(await refusalCode(url, { ...auth('dev-a'), keepalive: 1201 }), 6);
    const c = await connectDevice(url, { ...auth('dev-a'), keepalive: 1200 });
    await c.endAsync();
  });

  it("refuses a Will on another device's topic, and accepts one on its own", async () => {
    const code = await refusalCode(url, {
      ...auth('dev-a'),
      will: { topic: 'devices/dev-b/status', payload: Buffer.from('gone'), qos: 0, retain: false },
    });
    assert.equal(code, 5);
    const own = await connectDevice(url, {
      ...auth('dev-a'),
      will: {
        topic: 'devices/dev-a/status',
        payload: Buffer.from('{"online":false}'),
        qos: 0,
        retain: false,
      },
    });
    const will = nextEvent<DeviceMessage>(
      broker,
      'message',
      (m) => m.kind === 'status' && m.device.id === 'dev-a',
    );
    own.stream.destroy(); // ungraceful: the broker publishes the Will
    assert.equal((await will).payload.toString(), '{"online":false}');
    own.end(true);
  });

  it('does not kick a live session when someone CONNECTs with its client id and a wrong password', async () => {
    const live = await connectDevice(url, auth('dev-kick'));
    try {
      let closedEarly = false;
      live.on('close', () => (closedEarly = true));
      assert.equal(await refusalCode(url, auth('dev-kick', 'iotbd_wrong')), 4);
      const got = nextEvent<DeviceMessage>(broker, 'message', (m) => m.device.id === 'dev-kick');
      await live.publishAsync('devices/dev-kick/telemetry', '{"still":true}', { qos: 1 });
      assert.equal((await got).payload.toString(), '{"still":true}');
      assert.equal(closedEarly, false);
      assert.equal(broker.isOnline('dev-kick'), true);
    } finally {
      await live.endAsync();
    }
  });

  it('disconnects a live session because of its revocation, and of its disablement', async () => {
    for (const action of ['revoke', 'disable'] as const) {
      const id = 'dev-rev';
      tokens[id] = registry.rotateToken(id, 0).token;
      registry.setEnabled(id, true);
      const online = nextEvent<string>(broker, 'online', (d) => d === id);
      const c = await connectDevice(url, auth(id));
      await online;
      const gone = closed(c);
      if (action === 'revoke') registry.revokeTokens(id);
      else registry.setEnabled(id, false);
      // Offline within the call: the registry's event ends the session; no keepalive, sweep or timer is involved.
      assert.equal(broker.isOnline(id), false, action);
      await gone;
      c.end(true);
    }
  });

  it('accepts both tokens during the rotation grace period and only the new one after it', async () => {
    const old = tokens['dev-rot'];
    const { token: fresh } = registry.rotateToken('dev-rot', 60_000);
    tokens['dev-rot'] = fresh;
    for (const t of [old, fresh]) {
      const c = await connectDevice(url, auth('dev-rot', t));
      await c.endAsync();
    }
    const online = nextEvent<string>(broker, 'online', (id) => id === 'dev-rot');
    const live = await connectDevice(url, auth('dev-rot', old));
    await online;
    const ended = closed(live);
    clock += 60_000;
    try {
      // the session that authenticated with the old token ends when the grace period does
      await Promise.race([
        ended,
        new Promise((_, rej) => setTimeout(() => rej(new Error('old-token session still open')), 3000)),
      ]);
      live.end(true);
      assert.equal(await refusalCode(url, auth('dev-rot', old)), 4);
      const again = await connectDevice(url, auth('dev-rot', fresh));
      await again.endAsync();
    } finally {
      clock -= 60_000;
    }
  });

  it('ends a session at once when its token is rotated away without grace', async () => {
    const online = nextEvent<string>(broker, 'online', (id) => id === 'dev-rot');
    const c = await connectDevice(url, auth('dev-rot'));
    await online;
    const ended = closed(c);
    tokens['dev-rot'] = registry.rotateToken('dev-rot', 0).token;
    await ended;
    c.end(true);
  });

  it('publishes commands to a device and reports delivered when the device PUBACKs', async () => {
    const dev = await connectDevice(url, auth('dev-cmd'));
    try {
      await dev.subscribeAsync('devices/dev-cmd/commands', { qos: 1 });
      const received = new Promise<[string, Buffer]>((resolve) =>
        dev.once('message', (t, p) => resolve([t, p])),
      );
      const delivered = nextEvent<string>(broker, 'delivered');
      const deliveredArgs: unknown[] = [];
      broker.once('delivered', (...args: unknown[]) => deliveredArgs.push(...args));
      await broker.publishToDevice('dev-cmd', 'commands', '{"id":"c1","name":"reboot"}', { qos: 1 });
      const [topic, payload] = await received;
      assert.equal(topic, 'devices/dev-cmd/commands');
      assert.equal(payload.toString(), '{"id":"c1","name":"reboot"}');
      assert.equal(await delivered, 'dev-cmd');
      assert.equal(deliveredArgs[1], 'devices/dev-cmd/commands');
      assert.equal(String(deliveredArgs[2]), '{"id":"c1","name":"reboot"}');
    } finally {
      await dev.endAsync();
    }
  });

  it('drops a 10 MB packet from an authenticated device without buffering it', async () => {
    const c = await connectDevice(url, auth('dev-a'));
    const gone = closed(c);
    const leaked: DeviceMessage[] = [];
    const onMessage = (m: DeviceMessage): void => void leaked.push(m);
    broker.on('message', onMessage);
    c.publish('devices/dev-a/telemetry', Buffer.alloc(10 * 1024 * 1024, 0x41), { qos: 0 });
    await gone;
    broker.off('message', onMessage);
    c.end(true);
    assert.deepEqual(leaked, []);
    assert.ok(security.some((e) => e.event === 'limit_exceeded' && e.reason === 'packet_too_large'));
  });

  it('closes a connection that declares a 100 MB packet as soon as its header arrives, garbage unread', async () => {
    const s: Socket = netConnect({ port, host: '127.0.0.1' });
    await once(s, 'connect');
    s.on('error', () => undefined); // the server resets the connection: expected
    const closedAt = new Promise((resolve) => s.once('close', resolve));
    // PUBLISH, remaining length 100 MB (varint 0x80 0x80 0x80 0x30), then garbage that never ends
    s.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x30]));
    let sent = 0;
    const garbage = Buffer.alloc(64 * 1024, 0xff);
    const pump = (): void => {
      while (!s.destroyed && sent < 100 * 1024 * 1024 && s.write(garbage)) sent += garbage.length;
      if (!s.destroyed) s.once('drain', pump);
    };
    pump();
    await closedAt;
    assert.ok(sent < 10 * 1024 * 1024, `server closed after ${sent} bytes, long before 100 MB`);
  });

  it('refuses 10,000 failed CONNECTs from one address with bounded state while a legitimate device still connects', async () => {
    const before = broker.stats();
    let refused = 0;
    let i = 0;
    const flood = async (): Promise<void> => {
      while (i < 10_000) {
        const n = i++;
        // random made-up ids and wrong tokens for real ones: both must stay bounded
        const id = n % 2 ? `ghost-${n}` : 'dev-legit';
        const reply = await rawExchange(port, connectBytes(id, id, 'iotbd_wrong'), '127.0.0.2');
        if (reply.length === 0 || reply[3] !== 0) refused++;
      }
    };
    const storm = Promise.all(Array.from({ length: 50 }, flood));
    const online = nextEvent<string>(broker, 'online', (id) => id === 'dev-legit');
    const legit = await connectDevice(url, auth('dev-legit'));
    await online;
    await storm;
    await legit.endAsync();
    assert.equal(refused, 10_000);
    const s = broker.stats();
    assert.ok(s.trackedLockouts <= 500, `lockout entries bounded (${s.trackedLockouts})`);
    assert.ok(s.trackedAddresses <= before.trackedAddresses + 2);
    assert.ok(s.connections <= 1, `no connection left behind (${s.connections})`);
    // Every per-client record is counted above; made-up ids leave no presence entry behind either.
    assert.equal(broker.getPresence('ghost-9999').lastSeen, 0);
    assert.ok(
      security.some((e) => e.event === 'lockout' && e.deviceId === 'dev-legit' && e.ip === '127.0.0.2'),
    );
  });

  it('rate-limits new connections per address at accept', async () => {
    const p = await freePort();
    const strict = await DeviceBroker.start(
      { registry, limits: { connectRatePerIp: 1, connectBurstPerIp: 2, connectQueueMs: 0 } },
      { host: '127.0.0.1', port: p },
    );
    try {
      const codes: (number | string)[] = [];
      for (let k = 0; k < 4; k++)
        codes.push(
          await refusalCode(`mqtt://127.0.0.1:${p}`, { clientId: 'ghost', username: 'ghost', password: 'x' }),
        );
      assert.deepEqual(codes.slice(0, 2), [4, 4]);
      assert.ok(codes.slice(2).includes('CLOSED'), `over the rate: closed at accept (${codes.join(',')})`);
    } finally {
      await strict.close();
    }
  });

  it('closes cleanly with clients connected and the port can be bound again at once', async () => {
    const p = await freePort();
    let b = await DeviceBroker.start({ registry }, { host: '127.0.0.1', port: p });
    const c = await connectDevice(`mqtt://127.0.0.1:${p}`, auth('dev-b'));
    const gone = closed(c);
    await b.close();
    await gone;
    c.end(true);
    b = await DeviceBroker.start({ registry }, { host: '127.0.0.1', port: p });
    const again = await connectDevice(`mqtt://127.0.0.1:${p}`, auth('dev-b'));
    await again.endAsync();
    await b.close();
    await assert.rejects(DeviceBroker.start({ registry }, { host: '127.0.0.1', port }), /EADDRINUSE/);
  });

  it('closed while it starts, it leaves nothing running (the process can exit)', async () => {
    // In a process of its own: it exits only if no timer or socket of the broker is left (aedes starts
    // its own intervals while it is created). The timeout guards against a hang, it measures nothing.
    const script = [
      "const { join } = require('node:path');",
      `const { DeviceBroker } = require(${JSON.stringify(join(repoRoot, 'dist/nodes/lib/broker/broker.js'))});`,
      `const { Registry } = require(${JSON.stringify(join(repoRoot, 'dist/nodes/lib/registry/registry.js'))});`,
      `const { FileDeviceStore } = require(${JSON.stringify(join(repoRoot, 'dist/nodes/lib/registry/file-store.js'))});`,
      `const registry = new Registry(new FileDeviceStore(${JSON.stringify(join(dir.path, 'early-close.json'))}), ${JSON.stringify(SECRET)});`,
      'const broker = new DeviceBroker({ registry });',
      "const started = broker.start({ host: '127.0.0.1', port: 0 });",
      'void broker.close();',
      "started.then(() => { console.log('started'); process.exitCode = 1; }, (err) => { console.log(err.message); registry.close(); });",
    ].join('\n');
    const { stdout } = await run(process.execPath, ['-e', script], { timeout: 60_000 });
    assert.equal(stdout.trim(), 'the broker was closed while starting');
  });

  it('speaks TLS when given a certificate and key, and MQTT over WebSocket', async () => {
    const key = join(dir.path, 'key.pem');
    const cert = join(dir.path, 'cert.pem');
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ]);
    const { readFileSync } = await import('node:fs');
    const [p, wsPort] = [await freePort(), await freePort()];
    const b = await DeviceBroker.start(
      { registry },
      {
        host: '127.0.0.1',
        port: p,
        tls: { cert: readFileSync(cert), key: readFileSync(key) },
        ws: { host: '127.0.0.1', port: wsPort, path: '/mqtt' },
      },
    );
    try {
      const got = nextEvent<DeviceMessage>(b, 'message');
      const c = await connectDevice(`mqtts://127.0.0.1:${p}`, {
        ...auth('dev-b'),
        ca: readFileSync(cert),
        rejectUnauthorized: true,
      });
      await c.publishAsync('devices/dev-b/telemetry', '{"tls":1}', { qos: 1 });
      assert.equal((await got).payload.toString(), '{"tls":1}');
      await c.endAsync();
      await assert.rejects(
        mosquittoPub(p, 'dev-b', 'iotbd_wrong', 'x', ['--cafile', cert]),
        (err: { stderr: string }) => /bad user name or password/i.test(err.stderr),
      );
      const wsGot = nextEvent<DeviceMessage>(b, 'message');
      const w = await connectDevice(`ws://127.0.0.1:${wsPort}/mqtt`, auth('dev-b'));
      await w.publishAsync('devices/dev-b/telemetry', '{"ws":1}', { qos: 1 });
      assert.equal((await wsGot).payload.toString(), '{"ws":1}');
      await w.endAsync();
    } finally {
      await b.close();
    }
    writeFileSync(key, ''); // the temp dir is removed in after(); no key material left readable meanwhile
  });
});
