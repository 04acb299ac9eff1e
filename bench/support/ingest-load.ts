/**
 * Load generator for bench/ingest.ts, run as its own process (so its CPU is not the Node-RED process's):
 * many MQTT.js device clients publishing telemetry at QoS 1 with a bounded number of unacknowledged publishes
 * per device, driven over IPC by the benchmark:
 *   { cmd: 'connect', url, devices, tokens? }  -> { ok: true }
 *   { cmd: 'burst', total }                     -> { ok: true, seconds, errors }
 *   { cmd: 'steady', rate, seconds }            -> { ok: true, sent, errors, p50Ms, p99Ms, behind }
 *   { cmd: 'close' }                            -> exits
 * Every reading carries a `ts` unique per device (a per-device sequence after a base time), so every
 * publish is its own point in InfluxDB and stored counts are exact on every path.
 */
import mqtt, { type MqttClient } from 'mqtt';

interface Device {
  id: string;
  client: MqttClient;
  topic: string;
  seq: number;
  inFlight: number;
}

interface Options {
  /** Unacknowledged publishes per device at most. */
  inFlight: number;
}

const BASE_TS = Date.now() - 2 * 3_600_000;
const options: Options = { inFlight: Number(process.env.IOTB_BENCH_INFLIGHT ?? 10) };
let devices: Device[] = [];

function reading(d: Device): string {
  const seq = d.seq++;
  return `{"ts":${BASE_TS + seq},"temperature":${20 + (seq % 100) / 10},"humidity":40}`;
}

function connectOne(url: string, id: string, token: string | undefined): Promise<Device> {
  const client = mqtt.connect(url, {
    clientId: id,
    username: token === undefined ? undefined : id,
    password: token,
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 30_000,
    keepalive: 60,
  });
  return new Promise((resolve, reject) => {
    client.once('connect', () => {
      client.off('error', reject);
      resolve({ id, client, topic: `devices/${id}/telemetry`, seq: 0, inFlight: 0 });
    });
    client.once('error', reject);
  });
}

async function connectAll(url: string, count: number, tokens: string[] | undefined): Promise<void> {
  devices = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      devices[i] = await connectOne(url, `dev-${i}`, tokens?.[i]);
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
}

function publish(d: Device, onAck: (err?: Error) => void): void {
  d.inFlight++;
  d.client.publish(d.topic, reading(d), { qos: 1 }, (err) => {
    d.inFlight--;
    onAck(err ?? undefined);
  });
}

/** `total` readings spread evenly over the devices, each device with at most `inFlight` unacknowledged. */
function burst(total: number): Promise<{ seconds: number; errors: number }> {
  const t0 = process.hrtime.bigint();
  let errors = 0;
  let outstanding = total;
  return new Promise((resolve) => {
    if (total === 0) return resolve({ seconds: 0, errors });
    const share = devices.map(
      (_, i) => Math.floor(total / devices.length) + (i < total % devices.length ? 1 : 0),
    );
    const pump = (i: number): void => {
      const d = devices[i];
      while (share[i] > 0 && d.inFlight < options.inFlight) {
        share[i]--;
        publish(d, (err) => {
          if (err) errors++;
          if (--outstanding === 0) resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, errors });
          else pump(i);
        });
      }
    };
    devices.forEach((_, i) => pump(i));
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/**
 * `rate` readings per second for `seconds`, round-robin over the devices, every 5 ms what the schedule asks;
 * a device at its in-flight bound is passed over (counted in `behind` when none could take the reading).
 * Latency is publish -> PUBACK per reading.
 */
function steady(
  rate: number,
  seconds: number,
): Promise<{ sent: number; errors: number; p50Ms: number; p99Ms: number; behind: number }> {
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  let acked = 0;
  let sent = 0;
  let errors = 0;
  let behind = 0;
  let cursor = 0;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    const finish = (): void => {
      const got = latencies.subarray(0, acked).sort();
      resolve({
        sent,
        errors,
        p50Ms: percentile(got, 0.5),
        p99Ms: percentile(got, 0.99),
        behind,
      });
    };
    const tick = (): void => {
      const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate));
      while (sent < due) {
        let d: Device | undefined;
        for (let tries = 0; tries < devices.length; tries++) {
          const candidate = devices[cursor];
          cursor = (cursor + 1) % devices.length;
          if (candidate.inFlight < options.inFlight) {
            d = candidate;
            break;
          }
        }
        if (!d) {
          behind++;
          break;
        }
        const at = process.hrtime.bigint();
        sent++;
        publish(d, (err) => {
          if (err) errors++;
          else latencies[acked++] = Number(process.hrtime.bigint() - at) / 1e6;
          if (acked + errors === total) finish();
        });
      }
      if (sent < total) setTimeout(tick, 5);
    };
    tick();
  });
}

type Command =
  | { cmd: 'connect'; url: string; devices: number; tokens?: string[] }
  | { cmd: 'burst'; total: number }
  | { cmd: 'steady'; rate: number; seconds: number }
  | { cmd: 'close' };

process.on('message', (m: Command) => {
  const reply = (body: Record<string, unknown>): void => void process.send?.({ ok: true, ...body });
  const fail = (err: unknown): void => void process.send?.({ ok: false, error: String(err) });
  switch (m.cmd) {
    case 'connect':
      connectAll(m.url, m.devices, m.tokens).then(() => reply({}), fail);
      break;
    case 'burst':
      burst(m.total).then(reply, fail);
      break;
    case 'steady':
      steady(m.rate, m.seconds).then(reply, fail);
      break;
    case 'close':
      void Promise.all(devices.map((d) => d.client.endAsync(true))).finally(() => process.exit(0));
      break;
  }
});
