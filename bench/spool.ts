/**
 * Spool benchmark: append rate per fsync policy, read+ack rate, and recovery time (open + scan) of a backlog.
 *
 *   node --import tsx bench/spool.ts [--seconds 3] [--runs 3] [--backlog-mb 1024] [--cold] [--skip-append]
 *                                    [--dir /path]
 *
 * Records are ~100-byte line-protocol points, appended in batches of 100. Each measurement runs `--runs`
 * times; the median is printed with the spread. `--cold` drops the page cache (root, Linux) before each
 * recovery run so open() reads the backlog from disk instead of memory.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Spool, type FsyncPolicy } from '../nodes/lib/spool';
import { fmt, median } from './support/stats';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    runs: { type: 'string', default: '3' },
    'backlog-mb': { type: 'string', default: '1024' },
    cold: { type: 'boolean', default: false },
    'skip-append': { type: 'boolean', default: false },
    dir: { type: 'string', default: tmpdir() },
  },
});
const seconds = Number(args.seconds);
const runs = Number(args.runs);
const backlogBytes = Number(args['backlog-mb']) * 1024 * 1024;

const BATCH = 100;
const POOL = Array.from({ length: 1000 }, (_, i) =>
  Buffer.from(
    `telemetry,device=dev-${String(i).padStart(4, '0')},type=thermo temperature=${(20 + (i % 70) / 10).toFixed(2)},` +
      `humidity=48.2,battery=${i % 100}i 17000000${String(i).padStart(11, '0')}`,
  ),
);
const RECORD_BYTES = POOL.reduce((n, r) => n + r.length, 0) / POOL.length;
function batchesOf(size: number): Buffer[][] {
  return Array.from({ length: POOL.length / size }, (_, k) => POOL.slice(k * size, (k + 1) * size));
}

function summary(label: string, values: number[], unit: string): string {
  return `${label}: median ${fmt(median(values))} ${unit} (runs: ${values.map(fmt).join(', ')})`;
}

function scratch(): string {
  return mkdtempSync(join(args.dir, 'iotb-spool-bench-'));
}

/** Appends for `seconds` with `concurrency` appenders in flight; returns records/s. */
async function appendRate(fsync: FsyncPolicy, batch: number, concurrency: number): Promise<number> {
  const batches = batchesOf(batch);
  const dir = scratch();
  const spool = await Spool.open({ dir, fsync, maxBytes: 64 * 1024 * 1024 * 1024 });
  try {
    let records = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    const appender = async (k: number): Promise<void> => {
      for (let i = k; performance.now() < deadline; i += concurrency) {
        await spool.append(batches[i % batches.length]);
        records += batch;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, (_, k) => appender(k)));
    return records / ((performance.now() - started) / 1000);
  } finally {
    await spool.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Fills a spool with `bytes` of backlog (policy 'never', large batches). */
async function fillBacklog(dir: string, bytes: number): Promise<number> {
  const spool = await Spool.open({ dir, fsync: 'never', maxBytes: 2 * bytes + 1024 * 1024 * 1024 });
  const big = Array.from({ length: 50 }, () => POOL).flat();
  while (spool.stats().pendingBytes < bytes) await spool.append(big);
  const records = spool.stats().pendingRecords;
  await spool.close();
  return records;
}

function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

async function main(): Promise<void> {
  console.log(
    `spool benchmark · Node ${process.version} · ${seconds} s per run · ${runs} runs · records ~${Math.round(RECORD_BYTES)} B · dir ${args.dir}`,
  );
  // [policy, records per append call, calls in flight]
  const cases: Array<[FsyncPolicy, number, number]> = [
    ['never', BATCH, 1],
    ['interval', BATCH, 1],
    ['always', BATCH, 1],
    ['always', BATCH, 16],
    ['interval', 1, 100],
  ];
  for (const [policy, batch, concurrency] of args['skip-append'] ? [] : cases) {
    const rates: number[] = [];
    for (let r = 0; r < runs; r++) rates.push(await appendRate(policy, batch, concurrency));
    const label = `append fsync=${policy}, ${batch} record${batch > 1 ? 's' : ''} per call, ${concurrency} call${concurrency > 1 ? 's' : ''} in flight`;
    console.log(summary(label, rates, 'records/s'));
    console.log(`  = ${((median(rates) * RECORD_BYTES) / 1e6).toFixed(1)} MB/s of records`);
  }

  const dir = scratch();
  try {
    const t0 = performance.now();
    const records = await fillBacklog(dir, backlogBytes);
    console.log(
      `backlog: ${fmt(records)} records, ${fmt(backlogBytes / 1024 / 1024)} MiB written in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const segments = readdirSync(dir).filter((n) => n.endsWith('.seg'));
    const lastSize = statSync(join(dir, segments.sort().at(-1)!)).size;
    console.log(
      `  in ${segments.length} segments; the last one (scanned at open) holds ${fmt(lastSize / 1024 / 1024)} MiB`,
    );
    const timeOpen = async (label: string): Promise<void> => {
      const openMs: number[] = [];
      for (let r = 0; r < runs; r++) {
        if (args.cold) dropCaches();
        const started = performance.now();
        const spool = await Spool.open({ dir, maxBytes: 2 * backlogBytes });
        openMs.push(performance.now() - started);
        if (spool.stats().pendingRecords !== records) throw new Error('recovery counted a different backlog');
        await spool.close();
      }
      console.log(summary(`${label}${args.cold ? ', page cache dropped' : ''}`, openMs, 'ms'));
    };
    await timeOpen('recovery (open + scan) of the backlog');
    // Without seals (e.g. a crash between finishing a segment and writing its seal) every segment is scanned.
    for (const name of readdirSync(dir)) if (name.endsWith('.sealed')) unlinkSync(join(dir, name));
    await timeOpen('recovery without seals (older segments counted by a header walk)');

    const spool = await Spool.open({ dir, maxBytes: 2 * backlogBytes });
    const started = performance.now();
    let read = 0;
    for (let b = await spool.readBatch(5000, 1024 * 1024); b; b = await spool.readBatch(5000, 1024 * 1024)) {
      read += b.records.length;
      await spool.ack(b.end);
    }
    const s = (performance.now() - started) / 1000;
    await spool.close();
    console.log(
      `read + ack the backlog (batches of 5000 / 1 MiB): ${fmt(read / s)} records/s, ${((read * RECORD_BYTES) / s / 1e6).toFixed(0)} MB/s`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
