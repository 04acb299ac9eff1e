import type { IncomingMessage, ServerResponse } from 'node:http';
import { Authenticator } from '../auth/authenticator';
import type { Registry } from '../registry/registry';
import type { ArtifactStore } from './artifact-store';
import type { CampaignEngine } from './campaign';
import type { DownloadServer } from './download';
import { FirmwareError } from './errors';

/** Largest JSON body of a campaign request. */
const MAX_JSON_BYTES = 1024 * 1024;

export interface FirmwareHttpApiOptions {
  registry: Registry;
  artifacts: ArtifactStore;
  downloads: DownloadServer;
  /** Undefined while the campaign engine cannot run (no twin service): campaign routes answer 503. */
  campaigns: () => CampaignEngine | undefined;
  /** Where the routes live, default `/api/firmware`. */
  basePath?: string;
}

/**
 * The firmware HTTP API on a plain `(req, res)` pair, so that it can stream: uploads go to disk as they arrive and
 * downloads answer `Range` requests, which Node-RED's `http in` / `http response` nodes cannot. Routes (below
 * `basePath`), operator key unless said otherwise:
 *
 *   GET  /key                                    the signing public key (no credentials: it is public)
 *   POST /artifacts?type=&version=&notes=        upload; body = the image (application/octet-stream)
 *   GET  /artifacts[?type=]                      list
 *   GET  /artifacts/:type/:version/download      device token of that type (or operator key); Range, ETag
 *   POST /campaigns                              create (JSON)
 *   GET  /campaigns, GET /campaigns/:id[?devices=true]
 *   POST /campaigns/:id/{pause,resume,abort}
 *
 * `handle` answers and returns true for its routes, and returns false for any other path.
 */
export class FirmwareHttpApi {
  private readonly base: string;
  private readonly operator: Authenticator;
  private readonly device: Authenticator;

  constructor(private readonly opts: FirmwareHttpApiOptions) {
    this.base = (opts.basePath ?? '/api/firmware').replace(/\/+$/, '');
    this.operator = new Authenticator(opts.registry, { mode: 'apiKey' });
    this.device = new Authenticator(opts.registry, { mode: 'bearer' });
  }

  /** The download path of an artifact (what a campaign puts in its offers, before any public base URL). */
  downloadPath(type: string, version: string): string {
    return `${this.base}/artifacts/${encodeURIComponent(type)}/${encodeURIComponent(version)}/download`;
  }

  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== this.base && !url.pathname.startsWith(`${this.base}/`)) return false;
    this.route(req, res, url).catch((err: unknown) => {
      this.fail(req, res, err);
    });
    return true;
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const m = req.method ?? 'GET';
    let p: string[];
    try {
      p = url.pathname.slice(this.base.length).split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      throw new FirmwareError('INVALID', 'the path is not valid percent-encoding');
    }
    if (p[0] === 'key' && p.length === 1 && m === 'GET') {
      const a = this.opts.artifacts;
      json(res, 200, {
        algorithm: 'Ed25519',
        publicKeyPem: a.publicKeyPem,
        publicKeyRaw: a.publicKeyRaw,
        signedMessage: 'iotb-firmware-v1\\n<type>\\n<version>\\n<size>\\n<sha256 hex>',
      });
      return;
    }
    if (p[0] === 'artifacts' && p.length === 4 && p[3] === 'download' && (m === 'GET' || m === 'HEAD')) {
      this.download(req, res, p[1], p[2]);
      return;
    }
    this.asOperator(req);
    if (p[0] === 'artifacts' && p.length === 1) {
      if (m === 'GET') {
        json(res, 200, {
          artifacts: this.opts.artifacts.list(url.searchParams.get('type') ?? undefined),
        });
        return;
      }
      if (m === 'POST') {
        const length = req.headers['content-length'];
        const artifact = await this.opts.artifacts.upload(req, {
          type: url.searchParams.get('type') ?? undefined,
          version: url.searchParams.get('version') ?? undefined,
          notes: url.searchParams.get('notes') ?? undefined,
          declaredLength: length === undefined ? undefined : Number(length),
        });
        json(res, 201, artifact);
        return;
      }
    }
    if (p[0] === 'campaigns') {
      const engine = this.opts.campaigns();
      if (!engine)
        throw new FirmwareError(
          'BUSY',
          'campaigns need the twin service of the broker, which is not running',
        );
      if (p.length === 1 && m === 'GET') {
        json(res, 200, { campaigns: engine.list().map((c) => engine.summary(c.id)) });
        return;
      }
      if (p.length === 1 && m === 'POST') {
        const c = engine.create(await readJson(req));
        json(res, 201, engine.summary(c.id));
        return;
      }
      if (p.length === 2 && m === 'GET') {
        const c = engine.get(p[1]);
        if (!c) throw new FirmwareError('NOT_FOUND', `no campaign ${p[1]}`);
        const withDevices = url.searchParams.get('devices') === 'true';
        json(res, 200, {
          ...engine.summary(c.id),
          ...(withDevices ? { deviceStates: c.devices } : {}),
        });
        return;
      }
      if (p.length === 3 && m === 'POST' && (p[2] === 'pause' || p[2] === 'resume' || p[2] === 'abort')) {
        const c = engine[p[2]](p[1]);
        json(res, 200, engine.summary(c.id));
        return;
      }
    }
    throw new FirmwareError('NOT_FOUND', `no route ${m} ${url.pathname}`);
  }

  private download(req: IncomingMessage, res: ServerResponse, type: string, version: string): void {
    const ip = req.socket.remoteAddress;
    const asDevice = this.device.authenticate({ headers: req.headers, ip });
    let deviceId: string;
    if (asDevice.ok && asDevice.device) {
      deviceId = asDevice.device.id;
      if (asDevice.device.type !== type)
        throw new FirmwareError(
          'WRONG_TYPE',
          `device ${deviceId} is of type ${asDevice.device.type}, not ${type}`,
        );
    } else {
      const op = this.operator.authenticate({ headers: req.headers, ip });
      if (!op.ok) throw authError(asDevice.ok ? op : asDevice);
      deviceId = `operator:${op.apiKeyId ?? ''}`;
    }
    const artifact = this.opts.artifacts.get(type, version);
    if (!artifact) throw new FirmwareError('NOT_FOUND', `no firmware ${version} for type ${type}`);
    this.opts.downloads.serve(req, res, artifact, this.opts.artifacts.filePath(artifact), deviceId);
  }

  private asOperator(req: IncomingMessage): void {
    const op = this.operator.authenticate({ headers: req.headers, ip: req.socket.remoteAddress });
    if (!op.ok) throw authError(op);
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const status = err instanceof FirmwareError ? err.status : (err as { status?: number }).status;
    const code = (err as { code?: string }).code;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (!req.complete) {
      // Refused before the body was read (e.g. an image over the limit): answer, then drop the rest unread.
      res.setHeader('connection', 'close');
      res.once('finish', () => req.destroy());
    }
    if (status === undefined || code === undefined) {
      json(res, 500, { code: 'INTERNAL', reason: (err as Error).message });
      return;
    }
    json(res, status, { code, reason: (err as { reason?: string }).reason ?? (err as Error).message });
  }
}

function authError(o: { ok: false; status: number; code: string; reason: string }): Error {
  return Object.assign(new Error(o.reason), { status: o.status, code: o.code, reason: o.reason });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  // Node-RED's editor app parses JSON bodies before its HTTP nodes' app sees them when both share one root.
  const parsed = req as IncomingMessage & { _body?: boolean; body?: unknown };
  if (parsed._body) return asObject(parsed.body);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BYTES)
      throw new FirmwareError('TOO_LARGE', `the request body is over ${MAX_JSON_BYTES} bytes`);
    chunks.push(chunk);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new FirmwareError('INVALID', 'the body must be JSON');
  }
  return asObject(body);
}

function asObject(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new FirmwareError('INVALID', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}
