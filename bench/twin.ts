/**
 * Device twin benchmark: 10,000 twins in the file store, 1,000 reference devices connected to the embedded
 * broker (aedes) with twins on. Each round changes the desired state of every connected device and times, per
 * device, the change until its reported state has converged (desired -> broker -> device applies it ->
 * twin/reported -> merged, delta empty): p50, p99, max, and the whole fan-out.
 *
 *   npm run build && node --import tsx bench/twin.ts [--twins 10000] [--devices 1000] [--rounds 6] [--dir /path]
 *
 * Rounds alternate two ways of making the change, the baseline of the same run being the first:
 * - `batch`: all changes inside one `TwinService.batch` (one fsync for the wave), as a campaign wave does;
 * - `single`: one `patchDesired` per device (one fsync each), as separate HTTP PATCHes do.
 * Also measured: loading the 10,000 twins from disk (restart). Devices, broker and twins share this
 * machine's CPUs, so the figures are a floor for the backend alone. `--dir` puts the twin file on the disk to
 * measure (default: the system temp directory, which may be tmpfs, where fsync costs nothing).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DeviceBroker } from '../nodes/lib/broker/broker';
import { DeviceClient } from '../nodes/lib/device-client';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { FileTwinStore } from '../nodes/lib/twin/file-store';
import { TwinService, type TwinView } from '../nodes/lib/twin/twin-service';
import { freePort } from '../test/support/servers';
import { fmt, median } from './support/stats';

const { values } = parseArgs({
  options: {
    twins: { type: 'string', default: '10000' },
    devices: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '6' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const TWINS = Number(values.twins);
const DEVICES = Math.min(TWINS, Number(values.devices));
const ROUNDS = Number(values.rounds);
const ROUND_TIMEOUT_MS = 120_000;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface RoundResult {
  mode: 'batch' | 'single';
  patchMs: number;
  allMs: number;
  p50: number;
  p99: number;
  max: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(values.dir, 'iotb-bench-twin-'));
  const registry = new Registry(
    new FileDeviceStore(join(dir, 'devices.json')),
    'bench-secret-0123456789abcdef0123',
  );
  registry.putType({ name: 'thermostat' });
  const ids = Array.from({ length: TWINS }, (_, i) => `twin-${i}`);
  const tokens = ids.slice(0, DEVICES).map((id) => registry.createDevice({ id, type: 'thermostat' }).token);
  for (const id of ids.slice(DEVICES)) registry.createDevice({ id, type: 'thermostat' });

  const twinFile = join(dir, 'twins.json');
  let twins = new TwinService({ store: new FileTwinStore(twinFile), directory: registry });
  const initial = { intervalMs: 60_000, mode: 'eco', firmware: { version: '2.4.0' }, setpoint: 21.5 };
  let t = performance.now();
  twins.batch(() => {
    for (const id of ids) {
      twins.patchDesired(id, initial);
      twins.mergeReported(id, { ...initial, rssi: -70 });
    }
  });
  const populateMs = performance.now() - t;
  twins.close();
  t = performance.now();
  twins = new TwinService({ store: new FileTwinStore(twinFile), directory: registry });
  const loadMs = performance.now() - t;

  const port = await freePort();
  const broker = await DeviceBroker.start(
    { registry, twins, limits: { connectRatePerIp: 0, maxConnections: DEVICES + 100 } },
    { host: '127.0.0.1', port },
  );
  const url = `mqtt://127.0.0.1:${port}`;
  t = performance.now();
  const devices: DeviceClient[] = [];
  for (let i = 0; i < DEVICES; i += 100) {
    const batch = ids
      .slice(i, Math.min(i + 100, DEVICES))
      .map((id, k) => new DeviceClient({ url, deviceId: id, token: tokens[i + k], twin: true }));
    devices.push(...batch);
    await Promise.all(batch.map((d) => d.ready()));
  }
  // Each device has applied its desired document (version 1) once it was sent on subscribe.
  while (devices.some((d) => d.desiredVersion < 1)) await new Promise((r) => setTimeout(r, 50));
  console.log(`${DEVICES} devices connected, subscribed and in sync in ${fmt(performance.now() - t)} ms`);

  const results: RoundResult[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const mode = r % 2 === 0 ? 'batch' : 'single';
    const latencies: number[] = [];
    const started = new Map<string, number>();
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const onReported = (id: string, view: TwinView): void => {
      const at = started.get(id);
      if (at === undefined || Object.keys(view.delta).length > 0) return;
      started.delete(id);
      latencies.push(performance.now() - at);
      if (started.size === 0) done();
    };
    twins.on('reported', onReported);
    const patch = { intervalMs: 10_000 + r, mode: r % 2 ? 'eco' : 'comfort' };
    const t0 = performance.now();
    const change = (): void => {
      for (const d of devices) {
        started.set(d.deviceId, performance.now());
        twins.patchDesired(d.deviceId, patch);
      }
    };
    if (mode === 'batch') twins.batch(change);
    else change();
    const patchMs = performance.now() - t0;
    const timeout = setTimeout(() => done(), ROUND_TIMEOUT_MS);
    await all;
    clearTimeout(timeout);
    twins.off('reported', onReported);
    if (started.size > 0)
      throw new Error(`round ${r + 1}: ${started.size} devices did not converge in ${ROUND_TIMEOUT_MS} ms`);
    const allMs = performance.now() - t0;
    latencies.sort((a, b) => a - b);
    const res: RoundResult = {
      mode,
      patchMs,
      allMs,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      max: latencies.at(-1)!,
    };
    results.push(res);
    console.log(
      `round ${r + 1} (${mode}): changes made in ${fmt(patchMs)} ms, all converged after ${fmt(allMs)} ms; ` +
        `per device p50 ${fmt(res.p50)} ms, p99 ${fmt(res.p99)} ms, max ${fmt(res.max)} ms`,
    );
  }

  const summary = (mode: 'batch' | 'single'): string => {
    const rs = results.filter((x) => x.mode === mode);
    if (rs.length === 0) return `${mode}: no rounds`;
    const m = (k: keyof Omit<RoundResult, 'mode'>): number => median(rs.map((x) => x[k]));
    return (
      `${mode.padEnd(6)} median of ${rs.length}: changes ${fmt(m('patchMs'))} ms, all converged ${fmt(m('allMs'))} ms, ` +
      `p50 ${fmt(m('p50'))} ms, p99 ${fmt(m('p99'))} ms`
    );
  };
  console.log(
    `\n${TWINS} twins (populated in ${fmt(populateMs)} ms, loaded from disk in ${fmt(loadMs)} ms), ` +
      `desired fan-out to ${DEVICES} connected devices, twin file in ${values.dir}`,
  );
  console.log(summary('batch'));
  console.log(summary('single'));
  console.log(
    `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, ${new Date().toISOString()}`,
  );

  await Promise.all(devices.map((d) => d.stop()));
  await broker.close();
  twins.close();
  registry.close();
  rmSync(dir, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
