/**
 * Load generator for bench/ingest.ts, run as processes of its own (so its CPU is not the Node-RED process's;
 * several share the devices, see `startLoad` in ingest-run.ts): light MQTT 3.1.1 device clients over plain
 * TCP sockets publishing telemetry at QoS 1 with a bounded number of unacknowledged publishes per device,
 * driven over IPC by the benchmark:
 *   { cmd: 'connect', url, first, count, devices, tokens? } -> { ok: true }   devices first .. first+count-1
 *   { cmd: 'burst', total }                                 -> { ok: true, seconds, errors }
 *   { cmd: 'steady', rate, seconds }                        -> { ok: true, sent, errors, behind, latencies }
 *   { cmd: 'close' }                                        -> exits
 * A client encodes PUBLISH/CONNECT/PINGREQ itself and reads only the fixed header of what comes back
 * (CONNACK, PUBACK, PINGRESP): a few µs per publish, so that on a small machine the generator is not what
 * limits the rate it measures. What the broker sees is what any QoS 1 client sends; the writes of one pass
 * over a device go out in one socket write, as a client library with corking does.
 * Every reading carries a `ts` unique per device (a per-device sequence after a base time), so every
 * publish is its own point in InfluxDB and stored counts are exact on every path.
 */
import { connect as netConnect, type Socket } from 'node:net';

interface Device {
  id: string;
  socket: Socket;
  topic: Buffer;
  seq: number;
  nextPacketId: number;
  /** Packet id -> callback, for the publishes not yet acknowledged. */
  inFlight: Map<number, (err?: Error) => void>;
  /** Bytes received that do not yet form a whole packet. */
  rest: Buffer | undefined;
}

/** Unacknowledged publishes per device at most. */
const IN_FLIGHT = Number(process.env.IOTB_BENCH_INFLIGHT ?? 10);
const KEEPALIVE_S = 60;
const BASE_TS = Date.now() - 2 * 3_600_000;
let devices: Device[] = [];
/** Global index of devices[0]; `share` of the burst is computed over all `totalDevices`. */
let first = 0;
let totalDevices = 0;

function reading(d: Device): string {
  const seq = d.seq++;
  return `{"ts":${BASE_TS + seq},"temperature":${20 + (seq % 100) / 10},"humidity":40}`;
}

/** MQTT "remaining length" (1-4 bytes) written at `at`; returns the next offset. */
function writeLength(buf: Buffer, at: number, n: number): number {
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    buf[at++] = byte;
  } while (n > 0);
  return at;
}

const lengthBytes = (n: number): number => (n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4);

function packet(type: number, body: Buffer[]): Buffer {
  const len = body.reduce((s, b) => s + b.length, 0);
  const out = Buffer.allocUnsafe(1 + lengthBytes(len) + len);
  out[0] = type;
  let at = writeLength(out, 1, len);
  for (const b of body) at += b.copy(out, at);
  return out;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

function connectPacket(id: string, token: string | undefined): Buffer {
  const flags = 0x02 | (token === undefined ? 0 : 0xc0); // clean session, user name + password
  const header = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, flags, KEEPALIVE_S >> 8, KEEPALIVE_S & 0xff]);
  const payload = token === undefined ? [str(id)] : [str(id), str(id), str(token)];
  return packet(0x10, [header, ...payload]);
}

/** A QoS 1 PUBLISH of one reading. */
function publishPacket(d: Device, packetId: number): Buffer {
  const body = reading(d);
  const bodyLen = Buffer.byteLength(body);
  const len = 2 + d.topic.length + 2 + bodyLen;
  const out = Buffer.allocUnsafe(1 + lengthBytes(len) + len);
  out[0] = 0x32;
  let at = writeLength(out, 1, len);
  out.writeUInt16BE(d.topic.length, at);
  at += 2 + d.topic.copy(out, at + 2);
  out.writeUInt16BE(packetId, at);
  out.write(body, at + 2, 'utf8');
  return out;
}

const PINGREQ = Buffer.from([0xc0, 0]);

/** Handles every whole packet in `chunk` (with what was left over before); keeps the tail. */
function onData(d: Device, chunk: Buffer, onConnack: (rc: number) => void): void {
  const buf = d.rest ? Buffer.concat([d.rest, chunk]) : chunk;
  let at = 0;
  for (;;) {
    let len = 0;
    let mul = 1;
    let i = at + 1;
    for (; i < buf.length && i < at + 5; i++) {
      len += (buf[i] & 0x7f) * mul;
      mul *= 128;
      if ((buf[i] & 0x80) === 0) break;
    }
    if (i >= buf.length || i + 1 + len > buf.length) break;
    const type = buf[at] >> 4;
    const body = i + 1;
    if (type === 4) {
      const id = buf.readUInt16BE(body);
      const done = d.inFlight.get(id);
      if (done) {
        d.inFlight.delete(id);
        done();
      }
    } else if (type === 2) onConnack(buf[body + 1]);
    at = body + len;
  }
  d.rest = at < buf.length ? buf.subarray(at) : undefined;
}

function connectOne(host: string, port: number, id: string, token: string | undefined): Promise<Device> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port, noDelay: true });
    const d: Device = {
      id,
      socket,
      topic: Buffer.from(`devices/${id}/telemetry`),
      seq: 0,
      nextPacketId: 1,
      inFlight: new Map(),
      rest: undefined,
    };
    let connected = false;
    socket.on('data', (chunk: Buffer) =>
      onData(d, chunk, (rc) => {
        if (rc !== 0) return reject(new Error(`${id}: CONNACK return code ${rc}`));
        connected = true;
        resolve(d);
      }),
    );
    socket.once('connect', () => socket.write(connectPacket(id, token)));
    socket.on('error', (err) => {
      if (!connected) reject(err);
    });
    socket.on('close', () => {
      if (!connected) return reject(new Error(`${id}: connection closed before CONNACK`));
      // Not expected during a run: what was in flight is counted as errors, the run goes on.
      const lost = [...d.inFlight.values()];
      d.inFlight.clear();
      for (const done of lost) done(new Error(`${id}: connection closed`));
    });
  });
}

async function connectAll(
  url: string,
  from: number,
  count: number,
  all: number,
  tokens: string[] | undefined,
): Promise<void> {
  const { hostname, port } = new URL(url);
  first = from;
  totalDevices = all;
  devices = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      devices[i] = await connectOne(hostname, Number(port), `dev-${from + i}`, tokens?.[i]);
    }
  };
  await Promise.all(Array.from({ length: 50 }, lane));
  setInterval(
    () => {
      for (const d of devices) if (!d.socket.destroyed) d.socket.write(PINGREQ);
    },
    (KEEPALIVE_S * 1000) / 2,
  ).unref();
}

/** Queues one publish (written when the caller uncorks the socket). */
function publish(d: Device, onAck: (err?: Error) => void): void {
  let id = d.nextPacketId;
  while (d.inFlight.has(id)) id = (id % 65_535) + 1;
  d.nextPacketId = (id % 65_535) + 1;
  d.inFlight.set(id, onAck);
  d.socket.write(publishPacket(d, id));
}

/** `total` readings spread evenly over all devices, each device with at most IN_FLIGHT unacknowledged. */
function burst(total: number): Promise<{ seconds: number; errors: number }> {
  const t0 = process.hrtime.bigint();
  let errors = 0;
  const share = devices.map((_, i) => {
    const g = first + i;
    return Math.floor(total / totalDevices) + (g < total % totalDevices ? 1 : 0);
  });
  let outstanding = share.reduce((s, n) => s + n, 0);
  return new Promise((resolve) => {
    if (outstanding === 0) return resolve({ seconds: 0, errors });
    const pump = (i: number): void => {
      const d = devices[i];
      if (share[i] === 0 || d.inFlight.size >= IN_FLIGHT) return;
      d.socket.cork();
      while (share[i] > 0 && d.inFlight.size < IN_FLIGHT) {
        share[i]--;
        publish(d, (err) => {
          if (err) errors++;
          if (--outstanding === 0) resolve({ seconds: Number(process.hrtime.bigint() - t0) / 1e9, errors });
          else pump(i);
        });
      }
      process.nextTick(() => d.socket.uncork());
    };
    devices.forEach((_, i) => pump(i));
  });
}

/**
 * `rate` readings per second for `seconds`, round-robin over the devices, every 5 ms what the schedule asks;
 * a device at its in-flight bound is passed over (counted in `behind` when none could take the reading).
 * Latency is publish -> PUBACK per reading, in ms.
 */
function steady(
  rate: number,
  seconds: number,
): Promise<{ sent: number; errors: number; behind: number; latencies: Float64Array }> {
  const total = Math.round(rate * seconds);
  const latencies = new Float64Array(total);
  let acked = 0;
  let sent = 0;
  let errors = 0;
  let behind = 0;
  let cursor = 0;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    if (total === 0) return resolve({ sent, errors, behind, latencies });
    const tick = (): void => {
      const due = Math.min(total, Math.floor((Number(process.hrtime.bigint() - t0) / 1e9) * rate));
      const corked: Device[] = [];
      while (sent < due) {
        let d: Device | undefined;
        for (let tries = 0; tries < devices.length; tries++) {
          const candidate = devices[cursor];
          cursor = (cursor + 1) % devices.length;
          if (candidate.inFlight.size < IN_FLIGHT) {
            d = candidate;
            break;
          }
        }
        if (!d) {
          behind++;
          break;
        }
        if (d.socket.writableCorked === 0) {
          d.socket.cork();
          corked.push(d);
        }
        const at = process.hrtime.bigint();
        sent++;
        publish(d, (err) => {
          if (err) errors++;
          else latencies[acked++] = Number(process.hrtime.bigint() - at) / 1e6;
          if (acked + errors === total)
            resolve({ sent, errors, behind, latencies: latencies.subarray(0, acked) });
        });
      }
      for (const d of corked) d.socket.uncork();
      if (sent < total) setTimeout(tick, 5);
    };
    tick();
  });
}

type Command =
  | { cmd: 'connect'; url: string; first: number; count: number; devices: number; tokens?: string[] }
  | { cmd: 'burst'; total: number }
  | { cmd: 'steady'; rate: number; seconds: number }
  | { cmd: 'close' };

process.on('message', (m: Command) => {
  const reply = (body: object): void => void process.send?.({ ok: true, ...body });
  const fail = (err: unknown): void => void process.send?.({ ok: false, error: String(err) });
  switch (m.cmd) {
    case 'connect':
      connectAll(m.url, m.first, m.count, m.devices, m.tokens).then(() => reply({}), fail);
      break;
    case 'burst':
      burst(m.total).then(reply, fail);
      break;
    case 'steady':
      steady(m.rate, m.seconds).then(reply, fail);
      break;
    case 'close':
      for (const d of devices) d.socket.end(Buffer.from([0xe0, 0])); // DISCONNECT
      process.exit(0);
  }
});
