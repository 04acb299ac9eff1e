/**
 * Write throughput into a real influxd (Debian `influxdb` 1.6.7): points/s through the writer (durable spool
 * with the default fsync policy + sender, 5000-point batches) as a ratio to direct batched POSTs of the same
 * points in the same run, plus the rate of our line-protocol encoder.
 *
 *   node --import tsx bench/influx-write.ts [--points 500000] [--runs 3] [--fsync interval]
 *
 * Each run writes the points once directly and once through the writer, each into its own fresh database,
 * alternating which goes first; medians are printed. Absolute rates move with whatever else runs on the machine,
 * so the ratio is the number to look at.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { InfluxConnection } from '../nodes/lib/influx/connection';
import { encodeLine } from '../nodes/lib/influx/line-protocol';
import { InfluxSender } from '../nodes/lib/influx/sender';
import { Spool, type FsyncPolicy, type SpoolPosition } from '../nodes/lib/spool';
import { startInfluxd, tempDir } from '../test/support/servers';
import { fmt, median } from './support/stats';

const { values: args } = parseArgs({
  options: {
    points: { type: 'string', default: '500000' },
    runs: { type: 'string', default: '3' },
    fsync: { type: 'string', default: 'interval' },
  },
});
const N = Number(args.points);
const RUNS = Number(args.runs);
const BATCH = 5000;
const APPEND_CHUNK = 1000;

function makePoints(): Buffer[] {
  const t0 = Date.now();
  const base = 1_700_000_000_000;
  const lines = new Array<Buffer>(N);
  for (let i = 0; i < N; i++) {
    lines[i] = Buffer.from(
      encodeLine({
        measurement: 'telemetry',
        tags: { device: `dev-${i % 1000}`, type: 'thermo' },
        fields: { temperature: 20 + (i % 70) / 10, humidity: 48.2, battery: i % 100 },
        timeNs: `${base + Math.floor(i / 1000)}000000`,
      }),
    );
  }
  const s = (Date.now() - t0) / 1000;
  console.log(`encodeLine: ${fmt(N / s)} points/s (${N} points in ${s.toFixed(2)} s)`);
  return lines;
}

async function createDb(url: string, db: string): Promise<void> {
  const res = await fetch(`${url}/query`, {
    method: 'POST',
    body: new URLSearchParams({ q: `CREATE DATABASE ${db}` }),
  });
  if (res.status !== 200) throw new Error(`CREATE DATABASE: ${res.status}`);
}

async function direct(url: string, db: string, lines: Buffer[]): Promise<number> {
  const conn = new InfluxConnection({ flavour: '1', url, database: db, timeoutMs: 60_000 });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < lines.length; i += BATCH) {
    const chunk = lines.slice(i, i + BATCH);
    const res = await conn.write(Buffer.from(chunk.map(String).join('\n')));
    if (res.status !== 204) throw new Error(`direct write: ${res.status} ${res.body}`);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  conn.close();
  return lines.length / s;
}

async function throughWriter(url: string, db: string, lines: Buffer[]): Promise<number> {
  const dir = tempDir('bench-writer');
  const spool = await Spool.open({
    dir: join(dir.path, 'spool'),
    fsync: args.fsync as FsyncPolicy,
    maxBytes: 4 * 1024 ** 3,
  });
  const conn = new InfluxConnection({ flavour: '1', url, database: db, timeoutMs: 60_000 });
  const sender = new InfluxSender<SpoolPosition>(spool, (body, signal) => conn.write(body, signal), {
    batchRecords: BATCH,
  });
  let written = 0;
  const done = new Promise<void>((resolve) =>
    sender.on('written', (n) => {
      written += n;
      if (written >= lines.length) resolve();
    }),
  );
  const t0 = process.hrtime.bigint();
  sender.start();
  for (let i = 0; i < lines.length; i += APPEND_CHUNK) {
    await spool.append(lines.slice(i, i + APPEND_CHUNK));
    sender.notify();
  }
  await done;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await sender.stop(0);
  await spool.close();
  conn.close();
  dir.remove();
  if (sender.snapshot().rejected > 0) throw new Error('points rejected');
  return lines.length / s;
}

async function main(): Promise<void> {
  const influx = await startInfluxd();
  try {
    const lines = makePoints();
    const directRates: number[] = [];
    const writerRates: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      await createDb(influx.url, `direct${run}`);
      await createDb(influx.url, `writer${run}`);
      const order = run % 2 === 0 ? ['direct', 'writer'] : ['writer', 'direct'];
      for (const which of order) {
        if (which === 'direct') directRates.push(await direct(influx.url, `direct${run}`, lines));
        else writerRates.push(await throughWriter(influx.url, `writer${run}`, lines));
      }
      console.log(
        `run ${run + 1}: direct ${fmt(directRates[run])} points/s, writer ${fmt(writerRates[run])} points/s, ratio ${(
          (writerRates[run] / directRates[run]) *
          100
        ).toFixed(0)} %`,
      );
    }
    const d = median(directRates);
    const w = median(writerRates);
    console.log(
      `median of ${RUNS} (${N} points, batches of ${BATCH}, fsync ${args.fsync}): direct ${fmt(d)} points/s, ` +
        `writer ${fmt(w)} points/s, writer/direct ${((w / d) * 100).toFixed(0)} %`,
    );
  } finally {
    await influx.stop();
  }
}

void main();
