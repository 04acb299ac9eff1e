import type { NodeAPI } from 'node-red';
import type { ServerResponse } from 'node:http';
import {
  apiGuard,
  apiInternalError,
  apiNotFound,
  BurstLog,
  type ApiRefusal,
  requestPath,
  type GuardedRequest,
} from '../lib/http/api-guard';
import { rejectedTotal } from '../lib/metrics';
import { DEFAULT_LIMITS } from '../lib/validate';

/** The device/operator API's path under Node-RED's httpNodeRoot (docs/backend.md, HTTP API). */
export const API_PATH = '/api';

/** The shipped device telemetry route: its body is the device's payload, parsed by iotb-validate. */
const DEVICE_PAYLOAD_ROUTE = /^\/devices\/[^/]+\/telemetry\/?$/;
/** The firmware image upload (iotb-firmware): streamed to disk by the route, hashed as it arrives. */
const FIRMWARE_UPLOAD_ROUTE = /^\/firmware\/artifacts\/?$/;

type Next = (err?: unknown) => void;
type Handler = (req: GuardedRequest, res: ServerResponse, next: Next) => void;
interface ExpressApp {
  use(...args: unknown[]): unknown;
  parent?: ExpressApp;
  _router?: { stack: { handle: unknown }[] };
}

const mounted = new WeakSet<object>();

/**
 * Puts the API guard (nodes/lib/http/api-guard.ts) in front of every route under `/api`, once per Node-RED
 * app, and a JSON 404 / 500 behind them. Node-RED's defaults mount the editor and the flows' routes at the
 * same root, so the editor app sees `/api` requests first: it would parse their bodies with its own body
 * parser (answering malformed JSON with an HTML stack trace) and add its `Access-Control-Allow-Origin: *`.
 * `/api` requests therefore skip the editor app; the API's CORS is Node-RED's `httpNodeCors` alone.
 */
export function mountApiGuard(RED: NodeAPI): void {
  // Unset in a runtime without HTTP (httpNodeRoot false, or a bare test runtime).
  const nodeApp = RED.httpNode as ExpressApp | undefined;
  const settings = RED.settings as { httpNodeRoot?: string | false; apiMaxLength?: string | number };
  if (typeof nodeApp?.use !== 'function' || settings.httpNodeRoot === false || mounted.has(nodeApp)) return;
  mounted.add(nodeApp);
  const apiRoot = `${(settings.httpNodeRoot ?? '/').replace(/\/+$/, '')}${API_PATH}`;
  const maxBodyBytes = byteSize(settings.apiMaxLength) ?? 5 * 1024 * 1024;

  const log = new BurstLog((line) => {
    RED.log.warn(line);
  }, 'HTTP API requests refused');
  const refused = (r: ApiRefusal, method: string, path: string): void => {
    rejectedTotal.inc({ stage: 'api', code: r.code });
    log.note(r.code, `${method} ${API_PATH}${path}: ${r.status} ${r.code} (${r.reason})`);
  };

  nodeApp.use(
    API_PATH,
    apiGuard({
      maxBodyBytes,
      limits: { ...DEFAULT_LIMITS, maxBytes: maxBodyBytes },
      rawBody: (method, path) => method === 'POST' && DEVICE_PAYLOAD_ROUTE.test(path),
      streamedBody: (method, path) => method === 'POST' && FIRMWARE_UPLOAD_ROUTE.test(path),
      onRefused: refused,
    }),
  );

  const isApi = (url: string | undefined): boolean =>
    url !== undefined && url.startsWith(apiRoot) && /^(?:[/?]|$)/.test(url.slice(apiRoot.length));
  const editorApp = (RED.httpAdmin as ExpressApp | undefined)?.parent;
  const editorStack = editorApp?._router?.stack;
  if (editorApp && editorStack) {
    // next('router') leaves the editor app; the request goes on to the flows' routes.
    const skipEditor: Handler = (req, _res, next) => {
      next(isApi((req as { originalUrl?: string }).originalUrl) ? 'router' : undefined);
    };
    editorApp.use(skipEditor);
    const i = editorStack.findIndex((layer) => layer.handle === skipEditor);
    editorStack.unshift(...editorStack.splice(i, 1));
  }

  let rootApp = nodeApp;
  while (rootApp.parent) rootApp = rootApp.parent;
  if (rootApp !== nodeApp) {
    // Behind every route (the flows' routes live in the node app, mounted before this).
    rootApp.use(
      apiRoot,
      (req: GuardedRequest, res: ServerResponse) => {
        const method = req.method ?? '';
        const path = requestPath(req);
        refused(apiNotFound(method, `${API_PATH}${path}`, res), method, path);
      },
      (err: unknown, _req: GuardedRequest, res: ServerResponse, _next: Next) => {
        RED.log.error(`HTTP API: ${err instanceof Error ? err.message : String(err)}`);
        apiInternalError(res);
      },
    );
  }
}

/** Node-RED's `apiMaxLength` ('5mb', '500kb', or a number of bytes) in bytes. */
export function byteSize(value: string | number | undefined): number | undefined {
  if (typeof value === 'number') return value > 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(value ?? '');
  if (!m) return undefined;
  const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] || 'b').toLowerCase() as 'b'];
  return Math.floor(Number(m[1]) * unit);
}
