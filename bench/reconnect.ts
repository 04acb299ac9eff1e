// Reconnect storm: N reference devices (nodes/lib/device-client.ts, retrying every 500 ms) behind one address
// (127.0.0.1) connected to the embedded broker; the broker is restarted on the same port; measured: time from
// the new broker listening until every device has reconnected. Cases, same run, order rotated per round:
//   default     the broker's default limits (200 connects/s per address, burst 400)
//   unlimited   no per-address limit (the baseline: what the machine itself allows)
//   former      the former default, 20/s, burst 40
// Requirement: 1,000 devices within 10 s with the default limits.
// Run: node --import tsx bench/reconnect.ts   (IOTB_BENCH_DEVICES=1000, IOTB_BENCH_ROUNDS=3, IOTB_BENCH_CASES=default,unlimited,former)
// Devices and broker share this process and its cores: the figures are upper bounds of a real restart's time.
import { cpus } from 'node:os';
import type { BrokerLimits } from '../nodes/lib/broker/broker';
import { connectFleet, startFleetBroker } from '../test/support/device-fleet';
import { eventually } from '../test/support/servers';
import { fmt, median } from './support/stats';

const DEVICES = Number(process.env.IOTB_BENCH_DEVICES ?? 1000);
const ROUNDS = Number(process.env.IOTB_BENCH_ROUNDS ?? 3);
const CASES: Record<string, Partial<BrokerLimits>> = {
  default: {},
  unlimited: { connectRatePerIp: 0 },
  former: { connectRatePerIp: 20, connectBurstPerIp: 40 },
};
const selected = (process.env.IOTB_BENCH_CASES ?? 'default,unlimited,former').split(',');

/** Ms from the restarted broker listening until all devices reconnected (at most 120 s). */
async function reconnectMs(limits: Partial<BrokerLimits>): Promise<number> {
  const { fleet: fb, tokens } = await startFleetBroker(DEVICES, limits);
  const { fleet, ready } = connectFleet(fb.url, tokens);
  try {
    await ready;
    await fb.restart();
    const restartedAt = Date.now();
    return await eventually(
      () => `${DEVICES} devices to reconnect (${fleet.connectedSince(restartedAt)} so far)`,
      () =>
        fleet.connectedSince(restartedAt) === DEVICES
          ? Math.max(...fleet.lastConnect.values()) - restartedAt
          : undefined,
      120_000,
    );
  } finally {
    await fleet.stop();
    await fb.close();
  }
}

async function main(): Promise<void> {
  const results = new Map<string, number[]>(selected.map((c) => [c, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const order = selected.map((_, i) => selected[(i + round) % selected.length]);
    for (const c of order) {
      const ms = await reconnectMs(CASES[c] ?? {});
      results.get(c)!.push(ms);
      console.log(`round ${round + 1} ${c}: ${fmt(ms)} ms`);
    }
  }
  console.log(
    `\n${DEVICES} devices from 127.0.0.1, reconnect after a broker restart (median of ${ROUNDS}; ` +
      `${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}, ${new Date().toISOString()})`,
  );
  const base = results.has('unlimited') ? median(results.get('unlimited')!) : undefined;
  for (const [c, xs] of results)
    console.log(
      `  ${c.padEnd(10)} ${fmt(median(xs)).padStart(7)} ms  (${xs.map(fmt).join(', ')})` +
        (base ? `  ${(median(xs) / base).toFixed(2)}× unlimited` : ''),
    );
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
