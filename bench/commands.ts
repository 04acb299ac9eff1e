/**
 * Command dispatch benchmark: N reference devices connected to Mosquitto, one dispatcher (the iotb-command
 * logic with its append log) over the external-broker link; commands dispatched and acked per second and the
 * round-trip latency (submit -> SUCCEEDED, i.e. QUEUED, SENT, device ack "accepted", device ack "succeeded").
 *
 *   node --import tsx bench/commands.ts [--devices 1000] [--per-device 10]
 *
 * Everything runs on this machine: Mosquitto, the devices (one MQTT connection each, in this process) and the
 * dispatcher share the CPUs, so the numbers are a floor for the dispatcher alone.
 */
import { once } from 'node:events';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CommandDispatcher } from '../nodes/lib/commands/dispatcher';
import { MqttDeviceLink } from '../nodes/lib/commands/mqtt-link';
import type { CommandRecord } from '../nodes/lib/commands/states';
import { DeviceClient } from '../nodes/lib/device-client';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { startMosquitto, tempDir } from '../test/support/servers';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '1000' },
    'per-device': { type: 'string', default: '10' },
  },
});
const DEVICES = Number(values.devices);
const PER_DEVICE = Number(values['per-device']);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main(): Promise<void> {
  // The backend's subscription receives two acks per command from every device at once; Mosquitto's default
  // per-client queue (1000) would drop QoS 1 acks in a burst, which would measure Mosquitto's limit, not ours.
  // set_tcp_nodelay: Mosquitto leaves Nagle's algorithm on by default, adding delayed-ack stalls on every hop.
  const broker = await startMosquitto({
    extraConfig: ['max_queued_messages 1000000', 'max_inflight_messages 0', 'set_tcp_nodelay true'],
  });
  const dir = tempDir('bench-commands');
  const registry = new Registry(
    new FileDeviceStore(join(dir.path, 'devices.json')),
    'bench-secret-0123456789abcdef0123',
  );
  registry.putType({ name: 'lamp', commands: { led: { params: { type: 'object' } }, reboot: {} } });
  const ids = Array.from({ length: DEVICES }, (_, i) => `bench-${i}`);
  for (const id of ids) registry.createDevice({ id, type: 'lamp' });

  const link = new MqttDeviceLink({ url: broker.url, clientId: 'bench-backend', protocol: 'auto' });
  await link.ready();
  const dispatcher = new CommandDispatcher({
    link,
    directory: registry,
    logFile: join(dir.path, 'commands.jsonl'),
    timeoutMs: 60_000,
    ttlMs: 600_000,
    queueBound: PER_DEVICE + 10,
    ratePerSecond: 1000,
    maxFinished: DEVICES * PER_DEVICE * 2,
  });
  dispatcher.setMaxListeners(0);

  const t0 = Date.now();
  const devices: DeviceClient[] = [];
  for (let i = 0; i < ids.length; i += 100) {
    const batch = ids
      .slice(i, i + 100)
      .map((id) => new DeviceClient({ url: broker.url, deviceId: id, token: 'x' }));
    devices.push(...batch);
    await Promise.all(batch.map((d) => d.ready()));
  }
  while (ids.some((id) => !link.isOnline(id))) await once(link, 'online');
  console.log(`${DEVICES} devices connected and online in ${Date.now() - t0} ms`);

  async function round(label: string, perDevice: number): Promise<void> {
    const total = DEVICES * perDevice;
    const submitted = new Map<string, number>();
    const latencies: number[] = [];
    const states = new Map<string, number>();
    let finished = 0;
    const allDone = new Promise<void>((resolve) => {
      const onFinal = (r: CommandRecord): void => {
        const at = submitted.get(r.id);
        if (at === undefined) return;
        latencies.push(performance.now() - at);
        states.set(r.state, (states.get(r.state) ?? 0) + 1);
        if (++finished === total) {
          dispatcher.off('final', onFinal);
          resolve();
        }
      };
      dispatcher.on('final', onFinal);
    });
    const start = performance.now();
    for (let k = 0; k < perDevice; k++)
      for (const id of ids) {
        const cid = `${label}-${id}-${k}`;
        submitted.set(cid, performance.now());
        dispatcher.submit({ id: cid, deviceId: id, name: 'led', params: { on: k % 2 === 0 } });
      }
    const submitMs = performance.now() - start;
    await allDone;
    const ms = performance.now() - start;
    latencies.sort((a, b) => a - b);
    console.log(
      `${label}: ${total} commands to ${DEVICES} devices: ${Math.round((total / ms) * 1000)} commands/s dispatched and acked ` +
        `(submit ${Math.round(submitMs)} ms, all final ${Math.round(ms)} ms); round trip p50 ${pct(latencies, 50).toFixed(1)} ms, ` +
        `p99 ${pct(latencies, 99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms; states ${JSON.stringify(Object.fromEntries(states))}`,
    );
  }

  await round('warmup', 1);
  // Throughput: every device gets PER_DEVICE commands at once (the rest wait QUEUED by the per-device rate).
  await round('burst', PER_DEVICE);
  // One command to every device at once, three times.
  for (let r = 0; r < 3; r++) await round(`one-per-device-${r}`, 1);

  // Unloaded round trip: one command at a time to rotating devices.
  const idle: number[] = [];
  for (let i = 0; i < 300; i++) {
    const cid = `idle-${i}`;
    const at = performance.now();
    const done = new Promise<void>((resolve) => {
      const onFinal = (r: CommandRecord): void => {
        if (r.id !== cid) return;
        dispatcher.off('final', onFinal);
        resolve();
      };
      dispatcher.on('final', onFinal);
    });
    dispatcher.submit({ id: cid, deviceId: ids[(i * 7) % DEVICES], name: 'led', params: { on: true } });
    await done;
    idle.push(performance.now() - at);
  }
  idle.sort((a, b) => a - b);
  console.log(
    `one at a time: 300 commands: round trip p50 ${pct(idle, 50).toFixed(2)} ms, p99 ${pct(idle, 99).toFixed(2)} ms`,
  );

  for (const d of devices) await d.stop();
  dispatcher.close();
  registry.close();
  await link.end();
  await broker.stop();
  dir.remove();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
