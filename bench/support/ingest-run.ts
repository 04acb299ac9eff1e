/**
 * One case of the ingest benchmark in one round (bench/ingest.ts): a fresh node-red process with the case's
 * flow, the load generator process, a burst and a steady phase, exact counts read back from influxd, CPU and
 * peak RSS of the node-red process from /proc. Also used by the harness's own test.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FileDeviceStore } from '../../nodes/lib/registry/file-store';
import { Registry } from '../../nodes/lib/registry/registry';
import { startNodeRed, type NodeRedProcess } from '../../test/support/node-red';
import {
  freePort,
  influxRows,
  repoRoot,
  startInfluxd,
  startMosquitto,
  tempDir,
  waitForOutput,
  waitForPort,
  type Server,
} from '../../test/support/servers';
import { ingestFlow, mqttInNode, type ExternalIngress, type IngestCase } from './ingest-flows';

export interface Workload {
  devices: number;
  /** Readings in the burst, spread evenly over the devices. */
  burst: number;
  /** Readings per second in the steady phase, for `steadyS` seconds. */
  rate: number;
  steadyS: number;
  /** No new point in InfluxDB for this long: the rest is counted as lost. */
  stallS: number;
  /** Broker-facing nodes of the `external` case. */
  externalIngress: ExternalIngress;
  /** `iotb-mqtt-in` settings in place of the shipped flow's (the `external` case with `mqtt-in`). */
  mqttInSettings?: Record<string, unknown>;
  /** Load generator processes sharing the devices. */
  generators: number;
}

export interface RoundResult {
  case: IngestCase;
  round: number;
  burstRate: number;
  burstCpuUsPerMsg: number;
  peakRssMb: number;
  steadyCpuUsPerMsg: number;
  p50Ms: number;
  p99Ms: number;
  expected: number;
  stored: number;
  /** Times the load generator found every device at its in-flight bound in the steady phase. */
  behind: number;
  /** node-red + Mosquitto CPU per message (Mosquitto is idle in the embedded case): what the backend spends. */
  burstBackendCpuUsPerMsg: number;
  steadyBackendCpuUsPerMsg: number;
  /** CPU cores used in the burst (CPU seconds ÷ wall seconds) by node-red, by all generator processes, and by
   * the busiest generator process (near 1: that generator limited the rate). */
  burstCores: number;
  /** Mosquitto's cores in the burst (0 on the embedded path, which does not use it). */
  brokerCores: number;
  generatorCores: number;
  generatorMaxCores: number;
  generators: number;
}

/** The servers and devices every case of a run shares. */
export interface IngestBench {
  influx: Server;
  mosquitto: Server;
  registryFile: string;
  tokens: string[];
  stop(): Promise<void>;
}

const REGISTRY_ID = 'be0c0000000000ff';
const REGISTRY_SECRET = 'bench-ingest-registry-secret-0123456789abcdef';
const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s
const contribInfluxdb = resolve(repoRoot, 'node_modules', 'node-red-contrib-influxdb');

/** user + system CPU seconds of a process. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14, 15)
}

/** Peak resident set size (VmHWM) of a process in MiB. */
function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function createDb(url: string, db: string): Promise<void> {
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    body: new URLSearchParams({ q: `CREATE DATABASE "${db}"` }),
  });
  if (res.status !== 200) throw new Error(`CREATE DATABASE ${db}: ${res.status} ${await res.text()}`);
}

async function storedCount(url: string, db: string): Promise<number> {
  const rows = await influxRows(url, db, 'SELECT count(temperature) FROM telemetry');
  return rows.length === 0 ? 0 : Number(rows[0].count);
}

/** Polls until `expected` points are stored or nothing new arrived for `stallS`; resolves with count and time. */
async function untilStored(
  url: string,
  db: string,
  expected: number,
  stallS: number,
): Promise<{ n: number; at: number }> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = await storedCount(url, db);
    const at = Date.now();
    if (n >= expected) return { n, at };
    if (n !== last) {
      last = n;
      lastChange = at;
    } else if (at - lastChange > stallS * 1000) {
      return { n, at };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Until `clientId` holds a subscription to the telemetry topic (Mosquitto logs each SUBSCRIBE, see main). */
async function subscribed(mosquitto: Server, clientId: string): Promise<void> {
  await waitForOutput(
    mosquitto.proc,
    new RegExp(`${clientId} \\d (\\$share/[^/]+/)?devices/\\+/telemetry`),
    30_000,
  );
}

/**
 * IOTB_BENCH_PROFILE_DIR set: a node binary wrapper that writes a V8 CPU profile of the node-red process into
 * <dir>/<database>/ when it stops (--cpu-prof is not allowed in NODE_OPTIONS).
 */
function profilingNode(database: string): string | undefined {
  const root = process.env.IOTB_BENCH_PROFILE_DIR;
  if (!root) return undefined;
  const dir = resolve(root, database);
  mkdirSync(dir, { recursive: true });
  const wrapper = join(dir, 'node.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec '${process.execPath}' --cpu-prof --cpu-prof-dir='${dir}' "$@"\n`, {
    mode: 0o755,
  });
  return wrapper;
}

interface LoadProcess {
  child: ChildProcess;
  /** First device index and how many devices this process drives. */
  first: number;
  count: number;
  call<T extends object>(m: object): Promise<T>;
}

/**
 * The load generator: `processes` processes (ingest-load.ts), each driving a contiguous share of the devices,
 * so that no single generator thread limits the rate on a machine with spare cores.
 */
function startLoad(devices: number, processes: number): LoadProcess[] {
  const n = Math.max(1, Math.min(processes, devices));
  return Array.from({ length: n }, (_, k) => {
    const first = Math.floor((k * devices) / n);
    const count = Math.floor(((k + 1) * devices) / n) - first;
    const child = fork(join(__dirname, 'ingest-load.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced', // the steady phase's latencies come back as a Float64Array
    });
    const call = <T extends object>(m: object): Promise<T> =>
      new Promise((res, rej) => {
        const onExit = (code: number | null): void => rej(new Error(`load generator exited with ${code}`));
        child.once('message', (answer: { ok: boolean; error?: string } & T) => {
          child.off('exit', onExit);
          if (answer.ok) res(answer);
          else rej(new Error(answer.error));
        });
        child.once('exit', onExit);
        child.send(m);
      });
    return { child, first, count, call };
  });
}

const generatorCpu = (load: LoadProcess[]): number[] => load.map((l) => cpuSeconds(l.child.pid!));

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Every generator's steady phase at its share of `rate`; counts summed, latencies merged. */
async function steadyPhase(
  load: LoadProcess[],
  devices: number,
  rate: number,
  seconds: number,
): Promise<{ sent: number; errors: number; behind: number; p50Ms: number; p99Ms: number }> {
  const parts = await Promise.all(
    load.map((l) =>
      l.call<{ sent: number; errors: number; behind: number; latencies: Float64Array }>({
        cmd: 'steady',
        rate: (rate * l.count) / devices,
        seconds,
      }),
    ),
  );
  const all = new Float64Array(parts.reduce((s, p) => s + p.latencies.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p.latencies, at);
    at += p.latencies.length;
  }
  all.sort();
  return {
    sent: parts.reduce((s, p) => s + p.sent, 0),
    errors: parts.reduce((s, p) => s + p.errors, 0),
    behind: parts.reduce((s, p) => s + p.behind, 0),
    p50Ms: percentile(all, 0.5),
    p99Ms: percentile(all, 0.99),
  };
}

export async function runCase(
  which: IngestCase,
  round: number,
  bench: IngestBench,
  w: Workload,
): Promise<RoundResult> {
  const { influx, mosquitto, registryFile, tokens } = bench;
  // Mosquitto's CPU counts as the backend's on the paths that use it (the embedded path does its work itself).
  const mosquittoPid = mosquitto.proc.child.pid!;
  const database = `${which}_r${round}`;
  await createDb(influx.url, database);
  const embedded = which === 'embedded';
  const mqttPort = embedded ? await freePort() : mosquitto.port;
  const flows = ingestFlow(which, {
    influxUrl: influx.url,
    database,
    mqttHost: '127.0.0.1',
    mqttPort,
    registryId: REGISTRY_ID,
    externalIngress: w.externalIngress,
    mqttInSettings: w.mqttInSettings,
    clientId: `iotb-bench-${database}`,
  });
  const hasRegistry = flows.some((n) => n.id === REGISTRY_ID);
  let nr: NodeRedProcess | undefined;
  let load: LoadProcess[] = [];
  try {
    nr = await startNodeRed({
      flows,
      nodeBin: profilingNode(database),
      credentials: hasRegistry ? { [REGISTRY_ID]: { secret: REGISTRY_SECRET } } : undefined,
      settings: {
        nodesDir: [repoRoot, contribInfluxdb],
        logging: { console: { level: 'info', metrics: false, audit: false } },
      },
      prepareUserDir: (dir) => copyFileSync(registryFile, join(dir, 'iotb-registry.json')),
    });
    if (embedded) await waitForPort(mqttPort, nr.proc.child);
    else if (which === 'stock' || w.externalIngress === 'auth') await nr.waitForOutput(/Connected to broker/);
    else {
      // Every session of the node: session k > 0 is `{clientId}-s{k}`.
      const sessions = Number(mqttInNode(flows)?.sessions ?? 1);
      for (let k = 0; k < sessions; k++)
        await subscribed(mosquitto, `iotb-bench-${database}${k === 0 ? '' : `-s${k}`}`);
    }
    const pid = nr.proc.child.pid!;
    load = startLoad(w.devices, w.generators);
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    await Promise.all(
      load.map((l) =>
        l.call({
          cmd: 'connect',
          url,
          first: l.first,
          count: l.count,
          devices: w.devices,
          tokens: embedded ? tokens.slice(l.first, l.first + l.count) : undefined,
        }),
      ),
    );

    // Burst: every device publishes its share, bounded in flight; done when InfluxDB holds them all.
    const cpu0 = cpuSeconds(pid);
    const gen0 = generatorCpu(load);
    const broker0 = cpuSeconds(mosquittoPid);
    const t0 = Date.now();
    const acked = Promise.all(load.map((l) => l.call({ cmd: 'burst', total: w.burst })));
    const burstStored = await untilStored(influx.url, database, w.burst, w.stallS);
    await acked;
    const burstCpu = cpuSeconds(pid) - cpu0;
    const burstBrokerCpu = cpuSeconds(mosquittoPid) - broker0;
    const burstGenCpu = generatorCpu(load).map((c, k) => c - gen0[k]);
    const burstS = (burstStored.at - t0) / 1000;
    const peak = peakRssMb(pid);

    // Steady: w.rate readings/s for w.steadyS; CPU until the last of them is stored.
    const cpu1 = cpuSeconds(pid);
    const broker1 = cpuSeconds(mosquittoPid);
    const steady = await steadyPhase(load, w.devices, w.rate, w.steadyS);
    const expected = w.burst + steady.sent;
    const final = await untilStored(influx.url, database, expected, w.stallS);
    const steadyCpu = cpuSeconds(pid) - cpu1;
    const steadyBrokerCpu = cpuSeconds(mosquittoPid) - broker1;
    const steadyN = Math.max(1, final.n - burstStored.n);
    const stored = await storedCount(influx.url, database);
    return {
      case: which,
      round,
      burstRate: burstStored.n / burstS,
      burstCpuUsPerMsg: (burstCpu / Math.max(1, burstStored.n)) * 1e6,
      peakRssMb: peak,
      steadyCpuUsPerMsg: (steadyCpu / steadyN) * 1e6,
      steadyBackendCpuUsPerMsg: ((steadyCpu + steadyBrokerCpu) / steadyN) * 1e6,
      burstBackendCpuUsPerMsg: ((burstCpu + burstBrokerCpu) / Math.max(1, burstStored.n)) * 1e6,
      p50Ms: steady.p50Ms,
      p99Ms: steady.p99Ms,
      expected,
      stored,
      behind: steady.behind,
      burstCores: burstCpu / burstS,
      brokerCores: burstBrokerCpu / burstS,
      generatorCores: burstGenCpu.reduce((a, b) => a + b, 0) / burstS,
      generatorMaxCores: Math.max(...burstGenCpu) / burstS,
      generators: load.length,
    };
  } finally {
    await Promise.all(
      load.map(async (l) => {
        if (l.child.exitCode !== null) return;
        const exited = once(l.child, 'exit');
        l.child.send({ cmd: 'close' });
        await exited;
      }),
    );
    await nr?.stop();
  }
}

/** Devices dev-0 .. dev-(n-1) of type `sensor`, created once; every Node-RED user dir gets a copy. */
function prepareRegistry(dir: string, devices: number): { file: string; tokens: string[] } {
  const file = join(dir, 'iotb-registry.json');
  const registry = new Registry(new FileDeviceStore(file), REGISTRY_SECRET);
  registry.putType({ name: 'sensor' });
  const tokens: string[] = [];
  for (let i = 0; i < devices; i++)
    tokens.push(registry.createDevice({ id: `dev-${i}`, type: 'sensor' }).token);
  registry.close();
  return { file, tokens };
}

/** influxd, Mosquitto and a registry of `devices` devices for a run. */
export async function startIngestBench(devices: number): Promise<IngestBench> {
  const dir = tempDir('bench-ingest');
  const { file, tokens } = prepareRegistry(dir.path, devices);
  const influx = await startInfluxd();
  // The subscriber of a 150,000-message burst must not lose QoS 1 messages in Mosquitto's default queue of
  // 1,000 per client; 1,000 in flight to it instead of 20 so the broker is not what limits either path.
  const mosquitto = await startMosquitto({
    extraConfig: [
      'max_queued_messages 0',
      'max_inflight_messages 1000',
      // The default log types, and SUBSCRIBE lines so a run can await an ingest node's subscription; on
      // stderr, which Mosquitto does not buffer (its stdout into a pipe holds lines back indefinitely).
      'log_dest stderr',
      ...['error', 'warning', 'notice', 'information', 'subscribe'].map((t) => `log_type ${t}`),
    ],
  }).catch(async (err: unknown) => {
    await influx.stop();
    dir.remove();
    throw err;
  });
  return {
    influx,
    mosquitto,
    registryFile: file,
    tokens,
    async stop() {
      await mosquitto.stop();
      await influx.stop();
      dir.remove();
    },
  };
}
