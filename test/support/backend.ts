/** The shipped backend flow in a real node-red process with a real influxd, and a small client for its API. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startNodeRed, type NodeRedOptions, type NodeRedProcess } from './node-red';
import { eventually, freePort, influxRows, repoRoot, startInfluxd, type Server } from './servers';

export type FlowNode = { id: string; type: string; [k: string]: unknown };

export function shippedFlow(name: string): FlowNode[] {
  return JSON.parse(readFileSync(join(repoRoot, 'flows', name), 'utf8')) as FlowNode[];
}

/**
 * One request to the backend's HTTP API, as the operator (`key` undefined), with another key, or with none
 * (`key: null`). `body` is sent as JSON, `raw` as it is (a string with content-type application/json unless
 * `headers` say otherwise; bytes with the content-type of `headers` only, none if they name none). The reply
 * body is parsed when it is JSON, else the text. `timeoutMs` fails a request that is not answered in time.
 */
export type ApiCall = (
  method: string,
  path: string,
  opts?: {
    key?: string | null;
    body?: unknown;
    raw?: string | Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
    timeoutMs?: number;
  },
) => Promise<{ status: number; body: any; headers: Headers; text: string }>;

export function apiClient(baseUrl: string, operatorKey: string): ApiCall {
  return async (method, path, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.key !== null) headers.authorization = `Bearer ${opts.key ?? operatorKey}`;
    let body: string | Blob | undefined;
    if (typeof opts.raw === 'string') {
      body = opts.raw;
      headers['content-type'] ??= 'application/json';
    } else if (opts.raw !== undefined) {
      body = new Blob([opts.raw]); // a Blob without a type: fetch adds no content-type
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const signal = opts.timeoutMs === undefined ? undefined : AbortSignal.timeout(opts.timeoutMs);
    const res = await fetch(`${baseUrl}${path}`, { method, headers, body, signal });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. Prometheus text): the raw text
    }
    return { status: res.status, body: parsed, headers: res.headers, text };
  };
}

export interface Backend {
  nr: NodeRedProcess;
  influx: Server;
  mqttUrl: string;
  api: ApiCall;
  /** The operator API key the calls of `api` carry. */
  operatorKey: string;
  /** InfluxQL straight against influxd (the test's view of what was stored). */
  influxql(q: string): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

/**
 * Starts influxd (database iot) and node-red with flows/backend.json (+ extra flows), registry credentials deployed.
 * `env` adds to (or overrides) the flow's IOTB_* environment; `opts.patch` changes the flow's nodes before the
 * start (say in the test why a setting differs from the shipped one); `opts.prepareUserDir` runs before node-red
 * starts.
 */
export async function startBackend(
  extraFlows: FlowNode[] = [],
  env: Record<string, string> = {},
  opts: Pick<NodeRedOptions, 'prepareUserDir' | 'port'> & { patch?: (flows: FlowNode[]) => void } = {},
): Promise<Backend> {
  const influx = await startInfluxd({ database: 'iot' });
  const flows = [...shippedFlow('backend.json'), ...extraFlows];
  opts.patch?.(flows);
  const registryId = flows.find((n) => n.type === 'iotb-registry')!.id;
  const operatorKey = `op-${randomBytes(24).toString('base64url')}`;
  const mqttPort = await freePort();
  let started: NodeRedProcess | undefined;
  try {
    started = await startNodeRed({
      flows,
      credentials: { [registryId]: { secret: randomBytes(32).toString('hex'), apiKey: operatorKey } },
      prepareUserDir: opts.prepareUserDir,
      port: opts.port,
      env: {
        IOTB_MQTT_HOST: '127.0.0.1',
        IOTB_MQTT_PORT: String(mqttPort),
        IOTB_MQTT_TLS_CERT: '',
        IOTB_MQTT_TLS_KEY: '',
        IOTB_INFLUX_URL: influx.url,
        IOTB_INFLUX_DB: 'iot',
        ...env,
      },
    });
    // The flows run; wait until their API answers.
    const ready = started;
    await eventually('the backend API after the deploy', async () => {
      const res = await fetch(`${ready.url}/api/health`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });
  } catch (err) {
    // A node-red left running would keep this process alive (and its files open).
    await started?.stop();
    await influx.stop();
    throw err;
  }
  const nr = started;
  return {
    nr,
    influx,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    api: apiClient(nr.url, operatorKey),
    operatorKey,
    influxql: (q) => influxRows(influx.url, 'iot', q, 'ms'),
    async stop() {
      await nr.stop();
      await influx.stop();
    },
  };
}
