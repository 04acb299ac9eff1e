/** The validation benchmarks' schema and reading (bench/validate.ts, bench/support/validate-loop.ts). */

export const SCHEMA = {
  type: 'object',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 150 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
    battery: { type: 'number', minimum: 0, maximum: 100 },
  },
  required: ['temperature'],
};

/** The 66-byte reading, with its `ts` one second before `now`. */
export function readingText(now: number): string {
  return JSON.stringify({ ts: now - 1000, temperature: 21.5, humidity: 40, battery: 97 });
}

/** msg.payload holds the fields without ts/id: the copy every implementation of the contract makes. */
export function withoutReserved(reading: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const key in reading) if (key !== 'ts' && key !== 'id') fields[key] = reading[key];
  return fields;
}
