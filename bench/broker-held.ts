// Embedded broker, held acknowledgements: the broker's own CPU per QoS 1 reading when every PUBACK waits for
// the reading to be settled 'stored' (the path iotb-device-in takes), with many devices and several readings
// in flight each. The devices run in a child process, so the CPU measured (process.cpuUsage of this process:
// CPU time, not wall time) is the broker's alone: parsing, ACL, ack gate and ledger, PUBACK writes.
// Run: node --import tsx bench/broker-held.ts   (IOTB_BENCH_DEVICES, IOTB_BENCH_READINGS, IOTB_BENCH_INFLIGHT)
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { DeviceBroker } from '../nodes/lib/broker/broker';
import { ackLedger } from '../nodes/lib/ingest/ack-ledger';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { freePort, tempDir } from '../test/support/servers';

const env = (name: string, dflt: number): number => Number(process.env[name] ?? dflt) || dflt;
const DEVICES = env('IOTB_BENCH_DEVICES', 200);
const READINGS = env('IOTB_BENCH_READINGS', 100_000);
const INFLIGHT = env('IOTB_BENCH_INFLIGHT', 10);

/** The devices: each publishes its share of READINGS at QoS 1 with INFLIGHT unacknowledged at most. */
async function devices(port: number, tokens: string[]): Promise<void> {
  const { default: mqtt } = await import('mqtt');
  const clients = await Promise.all(
    tokens.map((password, i) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: `dev-${i}`,
        username: `dev-${i}`,
        password,
        reconnectPeriod: 0,
      }),
    ),
  );
  process.send?.('connected');
  await new Promise((resolve) => process.once('message', resolve));
  const payload = JSON.stringify({ temperature: 21.5, humidity: 40 });
  const share = Math.floor(READINGS / DEVICES);
  await Promise.all(
    clients.flatMap((c, i) =>
      Array.from({ length: INFLIGHT }, async (_, k) => {
        for (let n = k; n < share; n += INFLIGHT)
          await c.publishAsync(`devices/dev-${i}/telemetry`, payload, { qos: 1 });
      }),
    ),
  );
  await Promise.all(clients.map((c) => c.endAsync()));
  process.send?.('done');
}

async function main(): Promise<void> {
  if (process.argv[2] === 'devices')
    return devices(Number(process.argv[3]), JSON.parse(process.argv[4]) as string[]);
  const dir = tempDir('bench-broker-held');
  const registry = new Registry(
    new FileDeviceStore(join(dir.path, 'r.json')),
    'bench-broker-held-secret-0123456789abcdef',
  );
  registry.putType({ name: 'thermo' });
  const tokens = Array.from(
    { length: DEVICES },
    (_, i) => registry.createDevice({ id: `dev-${i}`, type: 'thermo' }).token,
  );
  const port = await freePort();
  const broker = await DeviceBroker.start(
    { registry, limits: { connectRatePerIp: 0, lockoutThreshold: 0 } },
    { host: '127.0.0.1', port },
  );
  broker.takeAcks(['telemetry']);
  // A writer's rounds: what arrived in one turn of the event loop is stored together.
  const ids: number[] = [];
  let received = 0;
  broker.on('message', (m) => {
    received++;
    if (m.ackId === undefined) return;
    if (ids.length === 0) setImmediate(() => ackLedger.settle(ids.splice(0), 'stored'));
    ids.push(m.ackId);
  });
  const child = fork(__filename, ['devices', String(port), JSON.stringify(tokens)], {
    execArgv: ['--import', 'tsx'],
  });
  try {
    await new Promise((resolve) => child.once('message', resolve));
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    child.send('go');
    await new Promise((resolve) => child.once('message', resolve));
    const cpu = process.cpuUsage(cpu0);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    const us = (cpu.user + cpu.system) / received;
    console.log(
      `${DEVICES} devices, ${INFLIGHT} in flight each, ${received} QoS 1 readings held until stored: ` +
        `broker CPU ${us.toFixed(1)} µs/reading (user ${(cpu.user / received).toFixed(1)}, system ${(cpu.system / received).toFixed(1)}), ` +
        `${Math.round(received / s)} readings/s`,
    );
  } finally {
    child.kill();
    await broker.close();
    registry.close();
    dir.remove();
  }
}

void main();
