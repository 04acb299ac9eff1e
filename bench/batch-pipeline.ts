/**
 * Readings/s of the telemetry pipeline inside Node-RED fed micro-batches vs one message per publication, in
 * the same runtime and the same run: iotb-validate (schema of the device type from an iotb-registry) →
 * iotb-quality (range + Hampel + LOCF, 3 fields) → iotb-influx-write (durable spool, default fsync), and
 * each node alone. 1,000 devices, each publication one reading of 3 fields as the device sends it (JSON text
 * in a Buffer). A message counts when the last node of its chain completes it; readings/s = messages/s ×
 * readings per message.
 *
 *   npm run build && node --import tsx bench/batch-pipeline.ts [--batch 100] [--rounds 7] [--round-ms 1000]
 *     [--only <text>]   only the chains whose name contains the text (e.g. `--only writer`)
 *
 * The writer's database is a closed port: the spool takes every point (bounded, oldest dropped), nothing
 * competes with the flow for the CPU, and the sender only retries now and then.
 */
import { parseArgs } from 'node:util';
import { freePort, tempDir } from '../test/support/servers';
import { builtNode, measureNodeRates, type CaseResult, type RateCase } from './support/node-red-rate';
import { fmt } from './support/stats';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '7' },
    'round-ms': { type: 'string', default: '1000' },
    warmup: { type: 'string', default: '2' },
    only: { type: 'string' },
  },
});
const BATCH = Number(args.batch);
const DEVICES = 1000;
const WINDOW = 200;

const schema = {
  type: 'object',
  properties: {
    temperature: { type: 'number', minimum: -40, maximum: 150 },
    humidity: { type: 'number', minimum: 0, maximum: 100 },
    battery: { type: 'integer', minimum: 0, maximum: 100 },
  },
  required: ['temperature'],
};
const devices = Array.from({ length: DEVICES }, (_, i) => ({ id: `dev-${i}`, type: 'thermo' }));

let seq = 0; // one sequence for every chain: each device's readings keep moving forward in time
const T0 = Date.now() - 3_600_000;

/** One publication as a device sends it, and the same reading as iotb-validate hands it on. */
function publication(): { device: (typeof devices)[number]; body: Buffer } {
  const i = seq++;
  const body = `{"ts":${T0 + i},"temperature":${20 + (i % 70) / 10},"humidity":48.2,"battery":${i % 100}}`;
  return { device: devices[i % DEVICES], body: Buffer.from(body) };
}
function validated(): { device: (typeof devices)[number]; fields: Record<string, number>; ts: number } {
  const i = seq++;
  return {
    device: devices[i % DEVICES],
    fields: { temperature: 20 + (i % 70) / 10, humidity: 48.2, battery: i % 100 },
    ts: T0 + i,
  };
}

const single = {
  raw: () => {
    const p = publication();
    return { topic: `devices/${p.device.id}/telemetry`, device: p.device, payload: p.body, ackId: null };
  },
  reading: () => {
    const r = validated();
    return { device: r.device, payload: r.fields, timestamp: r.ts, messageId: `${r.device.id}:${r.ts}` };
  },
};
const batched = {
  raw: () => {
    const payload: Buffer[] = [];
    const device: (typeof devices)[number][] = [];
    for (let k = 0; k < BATCH; k++) {
      const p = publication();
      payload.push(p.body);
      device.push(p.device);
    }
    return { topic: 'batch', device, payload, ackId: new Array<null>(BATCH).fill(null) };
  },
  reading: () => {
    const m = {
      payload: [] as unknown[],
      device: [] as unknown[],
      timestamp: [] as number[],
      messageId: [] as string[],
    };
    for (let k = 0; k < BATCH; k++) {
      const r = validated();
      m.payload.push(r.fields);
      m.device.push(r.device);
      m.timestamp.push(r.ts);
      m.messageId.push(`${r.device.id}:${r.ts}`);
    }
    return { topic: 'batch', ackId: new Array<null>(BATCH).fill(null), ...m };
  },
};

async function main(): Promise<void> {
  const dir = tempDir('bench-batch-pipeline');
  const deadPort = await freePort();
  const validate = { type: 'iotb-validate', schemaSource: 'type', registry: 'reg' };
  const quality = {
    type: 'iotb-quality',
    persist: false,
    rules: ['temperature', 'humidity', 'battery'].map((field) => ({ field, min: -1000, max: 10_000 })),
  };
  let writers = 0;
  const writer = () => ({
    type: 'iotb-influx-write',
    name: `w${writers++}`,
    influx: 'db',
    spoolMaxMB: 64,
    whenFull: 'drop-oldest',
  });
  const cases: (RateCase & { readings: number })[] = [];
  // Both shapes keep about WINDOW readings in the flow: 200 single messages, or 200 / BATCH batches.
  for (const [shape, readings, m] of [
    ['1 per message', 1, single],
    [`batch of ${BATCH}`, BATCH, batched],
  ] as const) {
    const window = Math.max(1, Math.round(WINDOW / readings));
    cases.push(
      {
        name: `validate → quality → writer, ${shape}`,
        readings,
        window,
        node: validate,
        outputs: 2,
        then: [
          { node: quality, outputs: 2 },
          { node: writer(), outputs: 3 },
        ],
        message: m.raw,
      },
      { name: `iotb-validate, ${shape}`, readings, window, node: validate, outputs: 2, message: m.raw },
      { name: `iotb-quality, ${shape}`, readings, window, node: quality, outputs: 2, message: m.reading },
      {
        name: `iotb-influx-write, ${shape}`,
        readings,
        window,
        node: writer(),
        outputs: 3,
        message: m.reading,
      },
    );
  }
  const measured = args.only ? cases.filter((c) => c.name.includes(args.only as string)) : cases;
  try {
    const result = await measureNodeRates({
      modules: ['registry', 'validate', 'quality', 'influx', 'influx-write'].map(builtNode),
      configNodes: [
        {
          id: 'reg',
          type: 'iotb-registry',
          file: `${dir.path}/registry.json`,
          types: [{ name: 'thermo', schema: JSON.stringify(schema) }],
        },
        {
          id: 'db',
          type: 'iotb-influx',
          flavour: '1',
          url: `http://127.0.0.1:${deadPort}`,
          database: 'bench',
        },
      ],
      rounds: Number(args.rounds),
      warmupRounds: Number(args.warmup),
      roundMs: Number(args['round-ms']),
      cases: measured,
    });
    const readingsOf = (c: CaseResult): number =>
      c.median * (measured.find((x) => x.name === c.name)?.readings ?? 1);
    console.log(
      `Node-RED ${result.nodeRed} on Node ${result.node}; ${DEVICES} devices; pass-through ${fmt(result.passThrough.median)} msg/s`,
    );
    console.log('chain'.padEnd(48) + 'msg/s'.padStart(10) + 'readings/s'.padStart(12) + '  batch / single');
    const half = result.cases.length / 2;
    result.cases.forEach((c, i) => {
      const ratio = i >= half ? (readingsOf(c) / readingsOf(result.cases[i - half])).toFixed(2) : '';
      console.log(
        c.name.padEnd(48) + fmt(c.median).padStart(10) + fmt(readingsOf(c)).padStart(12) + `  ${ratio}`,
      );
    });
  } finally {
    dir.remove();
  }
}

void main();
