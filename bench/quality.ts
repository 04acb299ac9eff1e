/**
 * Field updates per second through the quality engine (nodes/lib), one core:
 * gross range + Hampel (window 7) + LOCF imputation on 5 numeric fields per reading, 10,000 devices in turn.
 * Also prints the state memory per device-field for 100,000 devices x 5 fields.
 *
 *   node --expose-gc --import tsx bench/quality.ts [--rounds 5] [--readings 2000000]
 */
import { parseArgs } from 'node:util';
import { QualityEngine } from '../nodes/lib/quality/engine';
import { fmt, median } from './support/stats';

const FIELDS = ['temperature', 'humidity', 'pressure', 'voltage', 'current'] as const;

function engine(): QualityEngine {
  return new QualityEngine({
    window: 7,
    rules: FIELDS.map((field) => ({ field, min: -1000, max: 10_000, impute: 'locf' as const })),
  });
}

/** Field updates per wall-clock second and per CPU second (the latter holds when other work takes the cores). */
function throughput(devices: number, readings: number): { wall: number; cpu: number } {
  const q = engine();
  const ids = Array.from({ length: devices }, (_, i) => `dev-${i}`);
  const payloads = ids.map(() => ({ temperature: 0, humidity: 0, pressure: 0, voltage: 0, current: 0 }));
  let seed = 42;
  const noise = new Float64Array(4096).map(() => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  });
  const run = (n: number, t0: number): void => {
    for (let i = 0; i < n; i++) {
      const dev = i % devices;
      const p = payloads[dev];
      const k = i & 4095;
      p.temperature = 20 + noise[k];
      p.humidity = 50 + noise[(k + 1) & 4095];
      p.pressure = 1000 + noise[(k + 2) & 4095];
      p.voltage = 230 + noise[(k + 3) & 4095];
      p.current = i % 97 === 0 ? 999 : 5 + noise[(k + 4) & 4095]; // ~1% spikes: the flag path runs too
      q.process(ids[dev], 'sensor', t0 + Math.floor(i / devices) * 1000, p, undefined, 0);
    }
  };
  run(devices * 20, 1_700_000_000_000); // warm-up: windows full, JIT settled
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  run(readings, 1_700_000_000_000 + 20 * 1000 * devices);
  const cpu = process.cpuUsage(cpu0);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  const updates = readings * FIELDS.length;
  return { wall: updates / s, cpu: updates / ((cpu.user + cpu.system) / 1e6) };
}

function memoryPerField(devices: number): { perField: number; slabPerField: number; storePerField: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  gc();
  const before = process.memoryUsage();
  const q = engine();
  const p: Record<string, number> = {};
  for (let i = 0; i < devices; i++) {
    for (const f of FIELDS) p[f] = 1;
    q.process(`device-${String(i).padStart(6, '0')}`, 'sensor', 1_700_000_000_000, p, undefined, 0);
  }
  gc();
  const after = process.memoryUsage();
  const bytes = after.heapUsed - before.heapUsed + (after.arrayBuffers - before.arrayBuffers);
  const fields = devices * FIELDS.length;
  if (q.store.fieldCount !== fields) throw new Error('not every field has a record');
  return {
    perField: bytes / fields,
    slabPerField: q.store.slabBytes / fields,
    storePerField: q.store.bytes / fields,
  };
}

const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '5' }, readings: { type: 'string', default: '2000000' } },
});
const runs = Array.from({ length: Number(args.rounds) }, () => throughput(10_000, Number(args.readings)));
for (const kind of ['wall', 'cpu'] as const) {
  const xs = runs.map((r) => r[kind]);
  console.log(
    `field updates/s per ${kind === 'wall' ? 'wall-clock' : 'CPU'} second (range + Hampel(7) + LOCF, 5 fields, ` +
      `10k devices): median ${fmt(median(xs))} (runs: ${xs.map(fmt).join(', ')})`,
  );
}
const mem = memoryPerField(100_000);
console.log(
  `memory, 100,000 devices x 5 fields: ${mem.perField.toFixed(1)} bytes per device-field measured ` +
    `(typed-array slabs ${mem.slabPerField.toFixed(1)} incl. growth room; the store's own count ` +
    `${mem.storePerField.toFixed(1)}, asserted in test/unit/quality-memory.test.ts)`,
);
