// Ingest end to end: a stock Node-RED composition against the shipped pipeline on both broker paths, in one
// run, paired per round. See bench/README.md ("Ingest") for what is measured and how to run the full size.
// Smoke: IOTB_BENCH_DEVICES=100 IOTB_BENCH_BURST=10000 IOTB_BENCH_RATE=1000 IOTB_BENCH_STEADY_S=5 \
//        IOTB_BENCH_ROUNDS=1 node --import tsx bench/ingest.ts
// Full:  node --import tsx bench/ingest.ts
import { fork, type ChildProcess } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { FileDeviceStore } from '../nodes/lib/registry/file-store';
import { Registry } from '../nodes/lib/registry/registry';
import { startNodeRed, type NodeRedProcess } from '../test/support/node-red';
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
} from '../test/support/servers';
import { ingestFlow, type ExternalIngress, type IngestCase } from './support/ingest-flows';
import { fmt, median } from './support/stats';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(v) && v >= 0 ? v : dflt;
};

const DEVICES = env('IOTB_BENCH_DEVICES', 1000);
const BURST = env('IOTB_BENCH_BURST', 150_000);
const RATE = env('IOTB_BENCH_RATE', 5000);
const STEADY_S = env('IOTB_BENCH_STEADY_S', 20);
const ROUNDS = env('IOTB_BENCH_ROUNDS', 3);
/** No new point in InfluxDB for this long: the rest is counted as lost. */
const STALL_S = env('IOTB_BENCH_STALL_S', 30);
const CASES = (process.env.IOTB_BENCH_CASES ?? 'stock,external,embedded')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean) as IngestCase[];

/** `auth` (core mqtt in + iotb-auth topic mode) or `mqtt-in` (the package's external-broker node). */
const EXTERNAL_INGRESS: ExternalIngress = process.env.IOTB_BENCH_EXTERNAL === 'mqtt-in' ? 'mqtt-in' : 'auth';

const REGISTRY_ID = 'be0c0000000000ff';
const REGISTRY_SECRET = 'bench-ingest-registry-secret-0123456789abcdef';
const CLK_TCK = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s
const contribInfluxdb = resolve(repoRoot, 'node_modules', 'node-red-contrib-influxdb');

interface RoundResult {
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
  behind: number;
}

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

/** Polls until `expected` points are stored or nothing new arrived for STALL_S; resolves with count and time. */
async function untilStored(url: string, db: string, expected: number): Promise<{ n: number; at: number }> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const n = await storedCount(url, db);
    const at = Date.now();
    if (n >= expected) return { n, at };
    if (n !== last) {
      last = n;
      lastChange = at;
    } else if (at - lastChange > STALL_S * 1000) {
      return { n, at };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Until `clientId` holds a subscription to the telemetry topic (Mosquitto logs each SUBSCRIBE, see main). */
async function subscribed(mosquitto: Server, clientId: string): Promise<void> {
  await waitForOutput(mosquitto.proc, new RegExp(`${clientId} \\d devices/\\+/telemetry`), 30_000);
}

/** The load generator process and a request/answer call over its IPC channel. */
function startLoad(): { child: ChildProcess; call(m: object): Promise<Record<string, number>> } {
  const child = fork(join(__dirname, 'support', 'ingest-load.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const call = (m: object): Promise<Record<string, number>> =>
    new Promise((res, rej) => {
      child.once('message', (answer: { ok: boolean; error?: string } & Record<string, number>) =>
        answer.ok ? res(answer) : rej(new Error(answer.error)),
      );
      child.once('exit', (code) => rej(new Error(`load generator exited with ${code}`)));
      child.send(m);
    });
  return { child, call };
}

async function runCase(
  which: IngestCase,
  round: number,
  influx: Server,
  mosquitto: Server,
  registryFile: string,
  tokens: string[],
): Promise<RoundResult> {
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
    externalIngress: EXTERNAL_INGRESS,
    clientId: `iotb-bench-${database}`,
  });
  const hasRegistry = flows.some((n) => n.id === REGISTRY_ID);
  let nr: NodeRedProcess | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    nr = await startNodeRed({
      flows,
      credentials: hasRegistry ? { [REGISTRY_ID]: { secret: REGISTRY_SECRET } } : undefined,
      settings: {
        nodesDir: [repoRoot, contribInfluxdb],
        logging: { console: { level: 'info', metrics: false, audit: false } },
      },
      prepareUserDir: (dir) => copyFileSync(registryFile, join(dir, 'iotb-registry.json')),
    });
    if (embedded) await waitForPort(mqttPort, nr.proc.child);
    else if (which === 'stock' || EXTERNAL_INGRESS === 'auth') await nr.waitForOutput(/Connected to broker/);
    else await subscribed(mosquitto, `iotb-bench-${database}`);
    const pid = nr.proc.child.pid!;
    load = startLoad();
    const url = `mqtt://127.0.0.1:${mqttPort}`;
    await load.call({ cmd: 'connect', url, devices: DEVICES, tokens: embedded ? tokens : undefined });

    // Burst: every device publishes its share, bounded in flight; done when InfluxDB holds them all.
    const cpu0 = cpuSeconds(pid);
    const t0 = Date.now();
    const acked = load.call({ cmd: 'burst', total: BURST });
    const burstStored = await untilStored(influx.url, database, BURST);
    await acked;
    const burstCpu = cpuSeconds(pid) - cpu0;
    const peak = peakRssMb(pid);

    // Steady: RATE readings/s for STEADY_S; CPU until the last of them is stored.
    const cpu1 = cpuSeconds(pid);
    const steady = await load.call({ cmd: 'steady', rate: RATE, seconds: STEADY_S });
    const expected = BURST + steady.sent;
    const final = await untilStored(influx.url, database, expected);
    const steadyCpu = cpuSeconds(pid) - cpu1;
    const stored = await storedCount(influx.url, database);
    return {
      case: which,
      round,
      burstRate: burstStored.n / ((burstStored.at - t0) / 1000),
      burstCpuUsPerMsg: (burstCpu / Math.max(1, burstStored.n)) * 1e6,
      peakRssMb: peak,
      steadyCpuUsPerMsg: (steadyCpu / Math.max(1, final.n - burstStored.n)) * 1e6,
      p50Ms: steady.p50Ms,
      p99Ms: steady.p99Ms,
      expected,
      stored,
      behind: steady.behind,
    };
  } finally {
    if (load) {
      load.child.send({ cmd: 'close' });
      await new Promise((r) => load!.child.once('exit', r));
    }
    await nr?.stop();
  }
}

/** Devices dev-0 .. dev-(n-1) of type `sensor`, created once; every Node-RED user dir gets a copy. */
function prepareRegistry(dir: string): { file: string; tokens: string[] } {
  const file = join(dir, 'iotb-registry.json');
  const registry = new Registry(new FileDeviceStore(file), REGISTRY_SECRET);
  registry.putType({ name: 'sensor' });
  const tokens: string[] = [];
  for (let i = 0; i < DEVICES; i++)
    tokens.push(registry.createDevice({ id: `dev-${i}`, type: 'sensor' }).token);
  registry.close();
  return { file, tokens };
}

const ratio = (a: number, b: number): number => a / b;

function report(results: RoundResult[]): void {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  console.log(
    `\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}, ${new Date().toISOString()}`,
  );
  console.log(
    `${DEVICES} devices, ${fmt(BURST)}-message QoS 1 burst, steady ${fmt(RATE)}/s for ${STEADY_S} s, ${ROUNDS} round(s)\n`,
  );
  console.log(
    line([
      'round',
      'case',
      'burst msgs/s',
      'µs CPU/msg burst',
      'peak RSS MiB',
      'µs CPU/msg steady',
      'PUBACK p50/p99 ms',
      'stored/expected',
    ]),
  );
  console.log(line(Array(8).fill('---')));
  for (const r of results)
    console.log(
      line([
        r.round + 1,
        r.case,
        fmt(r.burstRate),
        r.burstCpuUsPerMsg.toFixed(1),
        r.peakRssMb.toFixed(0),
        r.steadyCpuUsPerMsg.toFixed(1),
        `${r.p50Ms.toFixed(1)} / ${r.p99Ms.toFixed(1)}`,
        `${fmt(r.stored)} / ${fmt(r.expected)}${r.stored === r.expected ? '' : ' LOSS'}${r.behind > 0 ? ` (generator behind ${r.behind}×)` : ''}`,
      ]),
    );
  if (!CASES.includes('stock')) return;
  console.log('\nPaired per-round ratios to stock, median over rounds (target in brackets):\n');
  console.log(line(['case', 'msgs/s', 'CPU/msg at steady rate', 'peak RSS in burst', 'zero loss']));
  console.log(line(Array(5).fill('---')));
  for (const which of CASES.filter((c) => c !== 'stock')) {
    const pairs = [...Array(ROUNDS).keys()].map((round) => {
      const stock = results.find((r) => r.case === 'stock' && r.round === round)!;
      const mine = results.find((r) => r.case === which && r.round === round)!;
      return {
        rate: ratio(mine.burstRate, stock.burstRate),
        cpu: ratio(mine.steadyCpuUsPerMsg, stock.steadyCpuUsPerMsg),
        rss: ratio(mine.peakRssMb, stock.peakRssMb),
      };
    });
    const lossless = results.filter((r) => r.case === which).every((r) => r.stored === r.expected);
    console.log(
      line([
        which,
        `${median(pairs.map((p) => p.rate)).toFixed(2)}× [≥ ${which === 'external' ? 3 : 2}×]`,
        `${median(pairs.map((p) => p.cpu)).toFixed(2)}× [≤ 0.4×]`,
        `${median(pairs.map((p) => p.rss)).toFixed(2)}× [≤ 0.5×]`,
        lossless ? 'yes' : 'NO',
      ]),
    );
  }
}

async function main(): Promise<void> {
  const dir = tempDir('bench-ingest');
  const { file, tokens } = prepareRegistry(dir.path);
  const influx = await startInfluxd();
  // The subscriber of a 150,000-message burst must not lose QoS 1 messages in Mosquitto's default queue of
  // 1,000 per client; 1,000 in flight to it instead of 20 so the broker is not what limits either path.
  const mosquitto = await startMosquitto({
    extraConfig: [
      'max_queued_messages 0',
      'max_inflight_messages 1000',
      // The default log types, and SUBSCRIBE lines so a run can await an ingest node's subscription.
      ...['error', 'warning', 'notice', 'information', 'subscribe'].map((t) => `log_type ${t}`),
    ],
  });
  const results: RoundResult[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so drift on a shared machine favours no case.
      const order = CASES.map((_, i) => CASES[(i + round) % CASES.length]);
      for (const which of order) {
        const r = await runCase(which, round, influx, mosquitto, file, tokens);
        console.error(
          `round ${round + 1} ${which}: ${fmt(r.burstRate)} msgs/s, stored ${fmt(r.stored)}/${fmt(r.expected)}`,
        );
        results.push(r);
      }
    }
    report(results);
  } finally {
    await mosquitto.stop();
    await influx.stop();
    dir.remove();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
