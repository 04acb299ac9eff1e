/**
 * Runs one case of the validation benchmark `count` times and exits: the workload that
 * bench/validate-instructions.sh counts instructions of under callgrind (a count does not depend on what
 * else the machine is doing, unlike a rate).
 *
 *   node --import tsx bench/support/validate-loop.ts <case> <count>
 */
import Ajv2020 from 'ajv/dist/2020';
import { readingText, SCHEMA, withoutReserved } from './validate-reading';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const lib = require('../../dist/nodes/lib/validate') as typeof import('../../nodes/lib/validate');

// A fixed time, so that every run counts the same work.
const now = 1_795_929_244_235;
const text = readingText(now);
const floor = new Ajv2020().compile(SCHEMA);
const ctx = { schema: lib.compileReadingSchema(SCHEMA), now };

const cases: Record<string, () => unknown> = {
  'json-parse': () => JSON.parse(text) as unknown,
  floor: () => floor(JSON.parse(text)),
  'floor-copy': () => floor(withoutReserved(JSON.parse(text) as Record<string, unknown>)),
  validate: () => lib.validatePayload(text, ctx),
};
const [name, countText] = process.argv.slice(2);
const run = Object.hasOwn(cases, name) ? cases[name] : undefined;
const count = Number(countText);
if (!run || !Number.isInteger(count)) {
  throw new Error(`usage: validate-loop.ts <${Object.keys(cases).join('|')}> <count>`);
}
let last: unknown;
for (let i = 0; i < count; i++) last = run();
if (last === undefined && count > 0) throw new Error('no result');
