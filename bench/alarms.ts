/**
 * Readings per second through the alarm engine (nodes/lib), one core: 10,000 devices × 5 rules (a threshold
 * with hysteresis and a duration, a threshold on a second field, absence, a rate over 10 minutes, a data
 * quality share over 10 minutes). Baseline in the same run: the same loop with no rules (device lookup only).
 * Also prints the state memory per (device, rule) with no open alarm, 100,000 devices × 5 rules.
 *
 *   node --expose-gc --import tsx bench/alarms.ts [--short]
 */
import { AlarmEngine } from '../nodes/lib/alarms/engine';
import { compileRules, type RuleInput } from '../nodes/lib/alarms/rules';
import { fmt, median } from './support/stats';

const RULES: RuleInput[] = [
  { name: 'warm', kind: 'threshold', raise: 'temperature > -10', clear: 'temperature < -12', raiseForS: 300 },
  { name: 'door', kind: 'threshold', raise: 'door == "open"', raiseForReadings: 3 },
  { name: 'silent', kind: 'absence', silentS: 3600 },
  { name: 'drain', kind: 'rate', field: 'battery', windowS: 600, raise: 'rate < -1' },
  { name: 'dq', kind: 'quality', windowS: 600, raise: 'share > 0.2' },
];
const short = process.argv.includes('--short');

function throughput(rules: RuleInput[], devices: number, readings: number): { wall: number; cpu: number } {
  const e = new AlarmEngine(compileRules(rules));
  const ids = Array.from({ length: devices }, (_, i) => `dev-${i}`);
  const payloads = ids.map(() => ({ temperature: -18, door: 'closed', battery: 100 }));
  let transitions = 0;
  const run = (n: number, t0: number): void => {
    for (let i = 0; i < n; i++) {
      const dev = i % devices;
      const p = payloads[dev];
      const round = Math.floor(i / devices);
      // Every 50th device runs warm for a while: the raise path and the alarm updates run too.
      p.temperature = dev % 50 === 0 && round % 40 > 20 ? -5 : -18 + (i & 7) * 0.25;
      p.battery = 100 - round * 0.01;
      transitions += e.reading(ids[dev], 'freezer', t0 + round * 30_000, p, (i & 31) === 0).length;
    }
  };
  run(devices * 20, 1_700_000_000_000); // warm-up: windows filled, JIT settled
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  run(readings, 1_700_000_000_000 + 20 * 30_000);
  const cpu = process.cpuUsage(cpu0);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  if (rules.length && transitions === 0) throw new Error('no alarm was raised: the bench exercises nothing');
  return { wall: readings / s, cpu: readings / ((cpu.user + cpu.system) / 1e6) };
}

function bytesPerDeviceRule(devices: number): { measured: number; counted: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const ids = Array.from({ length: devices }, (_, i) => `device-${String(i).padStart(6, '0')}`);
  const rules = compileRules(RULES);
  gc();
  const before = process.memoryUsage().heapUsed;
  const e = new AlarmEngine(rules);
  const reading = { temperature: -18, door: 'closed', battery: 90 };
  for (let t = 0; t < 3; t++)
    for (const id of ids) e.reading(id, 'freezer', 1_700_000_000_000 + t * 400_000, reading);
  gc();
  const bytes = process.memoryUsage().heapUsed - before;
  if (e.list().length !== 0 || e.deviceCount !== devices)
    throw new Error('expected no alarm and every device');
  return { measured: bytes / (devices * RULES.length), counted: e.stateBytes / (devices * RULES.length) };
}

const runs = short ? 3 : 7;
const readings = short ? 1_000_000 : 5_000_000;
const results = Array.from({ length: runs }, () => ({
  rules: throughput(RULES, 10_000, readings),
  baseline: throughput([], 10_000, readings),
}));
for (const kind of ['wall', 'cpu'] as const) {
  const xs = results.map((r) => r.rules[kind]);
  const ratio = results.map((r) => r.rules[kind] / r.baseline[kind]);
  console.log(
    `readings/s per ${kind === 'wall' ? 'wall-clock' : 'CPU'} second, 10k devices × 5 rules: median ${fmt(median(xs))} ` +
      `(runs: ${xs.map(fmt).join(', ')}); vs no rules in the same run: ${median(ratio).toFixed(2)}`,
  );
}
const mem = bytesPerDeviceRule(100_000);
console.log(
  `state per (device, rule), no open alarm, 100k devices × 5 rules: ${mem.measured.toFixed(0)} bytes measured ` +
    `(id strings made before; the engine's own count ${mem.counted.toFixed(0)} with them, asserted in ` +
    'test/unit/alarms-memory.test.ts)',
);
