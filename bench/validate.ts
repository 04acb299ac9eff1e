/**
 * Telemetry validation throughput.
 *
 * 1. nodes/lib on one core: parse + validate of a small reading (string and Buffer) with a compiled schema,
 *    next to the floor JSON.parse + the compiled ajv function alone. Target >= 1,000,000 readings/s.
 * 2. iotb-validate inside a running Node-RED next to a pass-through node in the same run. Target >= 90 %.
 *
 *   npm run build && node --import tsx bench/validate.ts [--lib-only|--node-only]
 */
import Ajv2020 from 'ajv/dist/2020';
import { performance } from 'node:perf_hooks';
import { builtNode, formatRates, measureNodeRates } from './support/node-red-rate';
import { readingText, SCHEMA, withoutReserved } from './support/validate-reading';
import { median } from './support/stats';

// The shipped build (tsc's CommonJS), not the TypeScript source through a loader: what Node-RED runs.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const lib = require('../dist/nodes/lib/validate') as typeof import('../nodes/lib/validate');
const { compileReadingSchema, DuplicateWindow, validatePayload } = lib;
const now = Date.now();
const text = readingText(now);
const buffer = Buffer.from(text);
const ITERATIONS = 2_000_000;
const RUNS = 5;

/**
 * Readings per second of each case over ITERATIONS calls, median of RUNS runs after one warm-up run. The
 * cases take turns in every run, so load from other processes falls on all of them alike.
 */
function rates(cases: [string, () => unknown][]): number[][] {
  const runs: number[][] = cases.map(() => []);
  for (let r = 0; r <= RUNS; r++) {
    cases.forEach(([, fn], c) => {
      const start = performance.now();
      for (let i = 0; i < ITERATIONS; i++) fn();
      if (r > 0) runs[c].push(ITERATIONS / ((performance.now() - start) / 1000));
    });
  }
  return runs;
}

function libBench(): void {
  const schema = compileReadingSchema(SCHEMA);
  const ajvFloor = new Ajv2020().compile(SCHEMA);
  const check = validatePayload(text, { schema, now });
  if (check.accepted.length !== 1) throw new Error(`benchmark reading refused: ${JSON.stringify(check)}`);
  const cases: [string, () => unknown][] = [
    ['floor: JSON.parse + compiled ajv', () => ajvFloor(JSON.parse(text))],
    ['JSON.parse alone', () => JSON.parse(text) as unknown],
    [
      'floor + copy without ts/id',
      () => ajvFloor(withoutReserved(JSON.parse(text) as Record<string, unknown>)),
    ],
    ['validatePayload(string)', () => validatePayload(text, { schema, now })],
    ['validatePayload(Buffer)', () => validatePayload(buffer, { schema, now })],
    [
      'validatePayload(string) + duplicate window',
      (() => {
        const duplicates = new DuplicateWindow(100, 10_000);
        let i = 0;
        return () =>
          validatePayload(`{"id":"m${i++}","temperature":21.5,"humidity":40,"battery":97}`, {
            schema,
            now,
            deviceId: 'd1',
            duplicates,
          });
      })(),
    ],
  ];
  console.log(
    `nodes/lib, one core, Node ${process.version}, ${ITERATIONS} readings per run, median of ${RUNS} runs`,
  );
  console.log(`reading: ${text} (${buffer.length} bytes)`);
  const runs = rates(cases);
  const floor = median(runs[0]);
  cases.forEach(([name], c) => {
    const m = median(runs[c]);
    console.log(
      `${name.padEnd(44)} ${Math.round(m).toLocaleString('en-US').padStart(11)} /s  ${(m / floor).toFixed(2)} of floor   runs: ${runs[c].map((x) => `${Math.round(x / 1000)}k`).join(' ')}`,
    );
  });
}

async function nodeBench(): Promise<void> {
  const node = { type: 'iotb-validate', schemaSource: 'inline', schema: JSON.stringify(SCHEMA) };
  // Readings as devices send them: each device's `ts` rises from one reading to the next (a day back, so that
  // a whole run stays inside the accepted window), and no reading repeats, so the duplicate window passes all.
  // The harness numbers messages per round, so the count goes on across rounds here.
  const start = Date.now() - 24 * 3_600_000;
  let n = 0;
  const message = (): Record<string, unknown> => {
    const i = n++;
    return {
      device: { id: `d${i % 100}`, type: 'thermo' },
      payload: Buffer.from(
        `{"ts":${start + i},"temperature":${20 + (i % 1000) / 100},"humidity":40,"battery":97}`,
      ),
    };
  };
  const result = await measureNodeRates({
    modules: [builtNode('validate')],
    // The pass-through node has one output, wired to the sink. The fair comparison leaves iotb-validate's
    // rejected output unwired the same way (every benchmark reading is valid, so nothing would go there);
    // with it wired too Node-RED cannot take its single-wire fast path, shown as a second case.
    cases: [
      // The ceiling for any node that reads JSON: decode + JSON.parse of the same messages, nothing else.
      { name: 'ceiling: JSON.parse only (bench-parse)', node: { type: 'bench-parse' }, outputs: 1, message },
      { name: 'iotb-validate, defaults (out 2 unwired)', node, outputs: 1, message },
      { name: 'iotb-validate, defaults, out 2 wired', node, outputs: 2, message },
      {
        name: 'iotb-validate, duplicate window off (out 2 unwired)',
        node: { ...node, dedupPerDevice: 0 },
        outputs: 1,
        message,
      },
    ],
  });
  console.log(formatRates(result));
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  if (mode !== '--node-only') libBench();
  if (mode !== '--lib-only') await nodeBench();
}

void main();
