/**
 * Messages/s of iotb-quality inside a running Node-RED runtime next to a pass-through node in the same run:
 * readings of 5 numeric fields from 1,000 devices, range + Hampel (window 7) + LOCF, state persistence off
 * (it runs on a timer, not per message).
 *
 *   npm run build && node --import tsx bench/quality-node.ts
 */
import { builtNode, formatRates, measureNodeRates } from './support/node-red-rate';

const T0 = 1_700_000_000_000;
let seq = 0; // the harness may restart `i` per round; event time must keep moving forward per device

async function main(): Promise<void> {
  const result = await measureNodeRates({
    modules: [builtNode('quality')],
    cases: [
      {
        name: 'iotb-quality (5 fields, 1,000 devices)',
        node: {
          type: 'iotb-quality',
          persist: false,
          rules: ['temperature', 'humidity', 'pressure', 'voltage', 'current'].map((field) => ({
            field,
            min: -1000,
            max: 10_000,
          })),
        },
        outputs: 2,
        message: () => {
          const i = seq++;
          return {
            topic: `devices/d${i % 1000}/telemetry`,
            device: { id: `d${i % 1000}`, type: 'sensor' },
            timestamp: T0 + i,
            payload: {
              temperature: 20 + Math.sin(i),
              humidity: 50 + Math.sin(i + 1),
              pressure: 1000 + Math.sin(i + 2),
              voltage: 230 + Math.sin(i + 3),
              current: 5 + Math.sin(i + 4),
            },
          };
        },
      },
    ],
  });
  console.log(formatRates(result));
}

void main();
