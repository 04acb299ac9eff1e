// Ingest end to end: a stock Node-RED composition against the shipped pipeline on both broker paths, in one
// run, paired per round. See bench/README.md ("Ingest end to end") for what is measured and how to run it.
// Smoke: IOTB_BENCH_DEVICES=100 IOTB_BENCH_BURST=10000 IOTB_BENCH_STEADY_S=5 IOTB_BENCH_ROUNDS=1 \
//        node --import tsx bench/ingest.ts
// Full:  node --import tsx bench/ingest.ts
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import type { IngestCase } from './support/ingest-flows';
import { runCase, startIngestBench, type RoundResult, type Workload } from './support/ingest-run';
import { fmt, median } from './support/stats';

const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && Number.isFinite(v) && v >= 0 ? v : dflt;
};

const workload: Workload = {
  devices: env('IOTB_BENCH_DEVICES', 1000),
  burst: env('IOTB_BENCH_BURST', 150_000),
  rate: env('IOTB_BENCH_RATE', 5000),
  steadyS: env('IOTB_BENCH_STEADY_S', 20),
  stallS: env('IOTB_BENCH_STALL_S', 30),
  // `mqtt-in` (the package's external-broker node, as shipped) or `auth` (core mqtt in + iotb-auth topic mode).
  externalIngress: process.env.IOTB_BENCH_EXTERNAL === 'auth' ? 'auth' : 'mqtt-in',
  generators: Math.max(1, env('IOTB_BENCH_GENERATORS', 2)),
  mqttInSettings: process.env.IOTB_BENCH_MQTT_IN
    ? (JSON.parse(process.env.IOTB_BENCH_MQTT_IN) as Record<string, unknown>)
    : undefined,
};
const ROUNDS = env('IOTB_BENCH_ROUNDS', 3);
const CASES = (process.env.IOTB_BENCH_CASES ?? 'stock,external,embedded')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean) as IngestCase[];

/** First line a server binary prints about its version, or '?'. */
function versionOf(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]
      .trim();
  } catch (err) {
    const out = (err as { stdout?: string }).stdout ?? ''; // mosquitto -h exits 3 after printing it
    return out.split('\n')[0].trim() || '?';
  }
}

const packageVersion = (name: string): string =>
  (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as { version: string }).version;

function report(results: RoundResult[]): void {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  console.log(
    `\n${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, Node-RED ${packageVersion('node-red')}, ` +
      `node-red-contrib-influxdb ${packageVersion('node-red-contrib-influxdb')}, ${versionOf('mosquitto', ['-h'])}, ` +
      `${versionOf('influxd', ['version'])}, ${new Date().toISOString()}`,
  );
  console.log(
    `${workload.devices} devices, ${fmt(workload.burst)}-message QoS 1 burst, steady ${fmt(workload.rate)}/s for ${workload.steadyS} s, ` +
      `${ROUNDS} round(s), ${workload.generators} load generator process(es)\n`,
  );
  console.log(
    line([
      'round',
      'case',
      'burst msgs/s',
      'µs CPU/msg burst',
      'peak RSS MiB',
      'µs CPU/msg steady',
      'µs CPU/msg steady, node-red + Mosquitto',
      'PUBACK p50/p99 ms',
      'stored/expected',
      'cores in burst: node-red / Mosquitto / generators (busiest)',
    ]),
  );
  console.log(line(Array(10).fill('---')));
  for (const r of results)
    console.log(
      line([
        r.round + 1,
        r.case,
        fmt(r.burstRate),
        r.burstCpuUsPerMsg.toFixed(1),
        r.peakRssMb.toFixed(0),
        r.steadyCpuUsPerMsg.toFixed(1),
        r.steadyBackendCpuUsPerMsg.toFixed(1),
        `${r.p50Ms.toFixed(1)} / ${r.p99Ms.toFixed(1)}`,
        `${fmt(r.stored)} / ${fmt(r.expected)}${r.stored === r.expected ? '' : ' LOSS'}${r.behind > 0 ? ` (generator behind ${r.behind}×)` : ''}`,
        `${r.burstCores.toFixed(2)} / ${r.brokerCores.toFixed(2)} / ${r.generatorCores.toFixed(2)} (${r.generatorMaxCores.toFixed(2)})`,
      ]),
    );
  if (!CASES.includes('stock')) return;
  console.log('\nPaired per-round ratios to stock, median over rounds (target in brackets):\n');
  console.log(
    line([
      'case',
      'msgs/s',
      'CPU/msg in the burst',
      `CPU/msg at ${fmt(workload.rate)}/s`,
      `CPU/msg at ${fmt(workload.rate)}/s, node-red + Mosquitto`,
      'peak RSS in the burst',
      `PUBACK p50 / p99 at ${fmt(workload.rate)}/s (ms, median)`,
      'zero loss',
    ]),
  );
  console.log(line(Array(8).fill('---')));
  const ratios = (which: IngestCase, of: (r: RoundResult) => number): number =>
    median(
      [...Array(ROUNDS).keys()].map((round) => {
        const stock = results.find((r) => r.case === 'stock' && r.round === round)!;
        const mine = results.find((r) => r.case === which && r.round === round)!;
        return of(mine) / of(stock);
      }),
    );
  const medianOf = (which: IngestCase, of: (r: RoundResult) => number): number =>
    median(results.filter((r) => r.case === which).map(of));
  for (const which of CASES) {
    const lossless = results.filter((r) => r.case === which).every((r) => r.stored === r.expected);
    const latency = `${medianOf(which, (r) => r.p50Ms).toFixed(1)} / ${medianOf(which, (r) => r.p99Ms).toFixed(1)}`;
    if (which === 'stock') {
      console.log(line(['stock', '1', '1', '1', '1', '1', latency, lossless ? 'yes' : 'NO']));
      continue;
    }
    console.log(
      line([
        which,
        `${ratios(which, (r) => r.burstRate).toFixed(2)}× [≥ ${which === 'external' ? 3 : 2}×]`,
        `${ratios(which, (r) => r.burstCpuUsPerMsg).toFixed(2)}×`,
        `${ratios(which, (r) => r.steadyCpuUsPerMsg).toFixed(2)}× [≤ 0.4×]`,
        `${ratios(which, (r) => r.steadyBackendCpuUsPerMsg).toFixed(2)}×`,
        `${ratios(which, (r) => r.peakRssMb).toFixed(2)}× [≤ 0.5×]`,
        latency,
        lossless ? 'yes' : 'NO',
      ]),
    );
  }
}

async function main(): Promise<void> {
  const bench = await startIngestBench(workload.devices);
  const results: RoundResult[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so drift in the machine's speed favours no case.
      const order = CASES.map((_, i) => CASES[(i + round) % CASES.length]);
      for (const which of order) {
        const r = await runCase(which, round, bench, workload);
        console.error(
          `round ${round + 1} ${which}: ${fmt(r.burstRate)} msgs/s, stored ${fmt(r.stored)}/${fmt(r.expected)}`,
        );
        results.push(r);
      }
    }
    report(results);
  } finally {
    await bench.stop();
  }
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
