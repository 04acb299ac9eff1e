// Embedded broker: cost of token verification and of the topic ACL check per message, end-to-end
// message rate, and authenticated connects per second.
// Run: node --import tsx bench/broker.ts
// The load generator runs in the same process on the same cores: numbers are a lower bound.
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { DeviceBroker } from '../nodes/lib/broker/broker';
import type { PresenceBook } from '../nodes/lib/broker/presence';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { freePort, tempDir } from '../test/support/servers';

const DEVICES = 1000;

function connectPacket(id: string, token: string): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: id,
    keepalive: 30,
    username: id,
    password: Buffer.from(token),
  });
}

/** One CONNECT over a fresh TCP connection; resolves with the CONNACK return code. */
function connectOnce(port: number, packet: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netConnect(port, '127.0.0.1');
    s.on('connect', () => s.write(packet));
    s.once('data', (b: Buffer) => {
      s.destroy();
      resolve(b[3]);
    });
    s.on('error', reject);
  });
}

async function main(): Promise<void> {
  const dir = tempDir('bench-broker');
  const registry = new Registry(
    new FileDeviceStore(join(dir.path, 'r.json')),
    'bench-broker-secret-0123456789abcdef0123',
  );
  registry.putType({ name: 'thermo' });
  const tokens: string[] = [];
  for (let i = 0; i < DEVICES; i++)
    tokens.push(registry.createDevice({ id: `dev-${i}`, type: 'thermo' }).token);
  const port = await freePort();
  const broker = await DeviceBroker.start(
    { registry, limits: { connectRatePerIp: 0, lockoutThreshold: 0 } },
    { host: '127.0.0.1', port },
  );
  try {
    // 1. token verification (the CONNECT path), per call
    const pw = tokens.map((t) => Buffer.from(t));
    const n = 200_000;
    let t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) registry.verifyToken(`dev-${i % DEVICES}`, pw[i % DEVICES]);
    console.log(
      `token verification: ${(Number(process.hrtime.bigint() - t) / n / 1000).toFixed(2)} µs/CONNECT`,
    );

    // 2. ACL check per PUBLISH (the broker's authorizePublish for an allowed and a refused topic)
    const online = new Promise((resolve) => broker.once('online', resolve));
    const dev = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: 'dev-0',
      username: 'dev-0',
      password: tokens[0],
      reconnectPeriod: 0,
    });
    await online;
    const aedesClient = (broker as unknown as { presence: PresenceBook }).presence.client('dev-0');
    // The broker's aedes hook (an arrow-function field), called as aedes calls it.
    const authorize = (
      broker as unknown as { authorizePublish: (c: unknown, p: unknown, cb: (e?: unknown) => void) => void }
    ).authorizePublish;
    const allowed = {
      cmd: 'publish',
      topic: 'devices/dev-0/telemetry',
      payload: Buffer.alloc(0),
      qos: 0,
      retain: false,
      dup: false,
    };
    let ok = 0;
    const cb = (e?: unknown): void => {
      if (!e) ok++;
    };
    t = process.hrtime.bigint();
    for (let i = 0; i < 1_000_000; i++) authorize(aedesClient, allowed, cb);
    console.log(
      `ACL check (allowed topic): ${(Number(process.hrtime.bigint() - t) / 1_000_000).toFixed(0)} ns/PUBLISH (${ok} allowed)`,
    );

    // 3. end to end: QoS 0 telemetry from one device until the broker has emitted every message
    const total = 50_000;
    let got = 0;
    const done = new Promise<void>((resolve) => broker.on('message', () => ++got === total && resolve()));
    const payload = JSON.stringify({ temperature: 21.5, humidity: 40 });
    t = process.hrtime.bigint();
    for (let i = 0; i < total; i++) dev.publish('devices/dev-0/telemetry', payload, { qos: 0 });
    await done;
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    console.log(
      `end to end (MQTT.js -> broker -> 'message'): ${Math.round(total / s)} msg/s, ${((s / total) * 1e6).toFixed(1)} µs/msg`,
    );
    await dev.endAsync();

    // 4. authenticated connects per second (raw CONNECT packets, 20 in parallel)
    const packets = tokens.map((tok, i) => connectPacket(`dev-${i}`, tok));
    let next = 0;
    let accepted = 0;
    const connects = 3000;
    const worker = async (): Promise<void> => {
      while (next < connects) {
        const i = next++;
        if ((await connectOnce(port, packets[i % DEVICES])) === 0) accepted++;
      }
    };
    t = process.hrtime.bigint();
    await Promise.all(Array.from({ length: 20 }, worker));
    const cs = Number(process.hrtime.bigint() - t) / 1e9;
    console.log(`authenticated connects: ${Math.round(connects / cs)}/s (${accepted}/${connects} accepted)`);
  } finally {
    await broker.close();
    registry.close();
    dir.remove();
  }
}

void main();
