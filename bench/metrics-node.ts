/**
 * Demonstrates the Node-RED rate harness: messages/s of iotb-metrics (renders the Prometheus registry for
 * every message) next to a pass-through node in the same runtime.
 *
 *   npm run build && node --import tsx bench/metrics-node.ts
 */
import { builtNode, formatRates, measureNodeRates } from './support/node-red-rate';

async function main(): Promise<void> {
  const result = await measureNodeRates({
    modules: [builtNode('metrics')],
    cases: [
      {
        name: 'iotb-metrics (scrape per message)',
        node: { type: 'iotb-metrics', intervalS: 0 },
        message: () => ({ payload: 'scrape' }),
      },
    ],
  });
  console.log(formatRates(result));
}

void main();
