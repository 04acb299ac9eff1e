/**
 * Runs one case of the validation benchmark `count` times and exits: the workload that
 * bench/validate-instructions.sh counts instructions of under callgrind (a count does not depend on what
 * else the machine is doing, unlike a rate).
 *
 *   node --import tsx bench/support/validate-loop.ts <case> <count>
 */
import Ajv2020 from 'ajv/dist/2020';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const lib = require('../../dist/nodes/lib/validate') as typeof import('../../nodes/lib/validate');

const SCHEMA = {
  type: 'object',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 150 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
    battery: { type: 'number', minimum: 0, maximum: 100 },
  },
  required: ['temperature'],
};
// A fixed time, so that every run counts the same work.
const now = 1_795_929_244_235;
const text = JSON.stringify({ ts: now - 1000, temperature: 21.5, humidity: 40, battery: 97 });
const floor = new Ajv2020().compile(SCHEMA);
const ctx = { schema: lib.compileReadingSchema(SCHEMA), now };

function withoutReserved(reading: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const key in reading) if (key !== 'ts' && key !== 'id') fields[key] = reading[key];
  return fields;
}

const cases: Record<string, () => unknown> = {
  'json-parse': () => JSON.parse(text) as unknown,
  floor: () => floor(JSON.parse(text)),
  'floor-copy': () => floor(withoutReserved(JSON.parse(text) as Record<string, unknown>)),
  validate: () => lib.validatePayload(text, ctx),
};
const [name, countText] = process.argv.slice(2);
const run = cases[name];
const count = Number(countText);
if (!run || !Number.isInteger(count)) {
  throw new Error(`usage: validate-loop.ts <${Object.keys(cases).join('|')}> <count>`);
}
let last: unknown;
for (let i = 0; i < count; i++) last = run();
if (last === undefined && count > 0) throw new Error('no result');
