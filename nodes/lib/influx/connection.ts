/**
 * One InfluxDB server as the nodes see it: which write/query endpoints its API flavour has, how to
 * authenticate, TLS, timeouts and gzip. A plain HTTP client (node:http/https with a keep-alive agent) so the
 * sender sees every status code, header and body itself: the client library's WriteApi retries in memory and
 * reads Retry-After as milliseconds, which is exactly what the spool replaces.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

const gzip = promisify(gzipCb);

/** 1: `/write?db=&rp=`; 2: `/api/v2/write?org=&bucket=`; 3: `/api/v3/write_lp?db=`. */
export type InfluxFlavour = '1' | '2' | '3';

export interface InfluxConnectionOptions {
  flavour: InfluxFlavour;
  url: string;
  /** 1.x and 3.x database. */
  database?: string;
  /** 1.x retention policy (empty: the database's default). */
  retentionPolicy?: string;
  /** 2.x organisation and bucket. */
  org?: string;
  bucket?: string;
  token?: string;
  /** 1.x user/password (Basic auth). */
  username?: string;
  password?: string;
  timeoutMs?: number;
  /** gzip write bodies above this many bytes (0: never). */
  gzipMinBytes?: number;
  tls?: { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean };
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A failure below HTTP (refused, reset, timeout, TLS): always worth retrying. */
export class NetworkError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'NetworkError';
  }
}

const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

export class InfluxConnection {
  readonly base: URL;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly timeoutMs: number;

  constructor(readonly opts: InfluxConnectionOptions) {
    this.base = new URL(opts.url.endsWith('/') ? opts.url : `${opts.url}/`);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:')
      throw new Error(`InfluxDB URL must be http(s), not ${this.base.protocol}`);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.agent =
      this.base.protocol === 'https:'
        ? new HttpsAgent({
            keepAlive: true,
            maxSockets: 4,
            ca: opts.tls?.ca || undefined,
            cert: opts.tls?.cert || undefined,
            key: opts.tls?.key || undefined,
            rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true,
          })
        : new HttpAgent({ keepAlive: true, maxSockets: 4 });
  }

  /** Where line protocol goes for this flavour, always with nanosecond precision. */
  writePath(): string {
    const o = this.opts;
    const q = new URLSearchParams();
    switch (o.flavour) {
      case '1':
        q.set('db', o.database ?? '');
        if (o.retentionPolicy) q.set('rp', o.retentionPolicy);
        q.set('precision', 'ns');
        return `write?${q}`;
      case '2':
        q.set('org', o.org ?? '');
        q.set('bucket', o.bucket ?? '');
        q.set('precision', 'ns');
        return `api/v2/write?${q}`;
      case '3':
        q.set('db', o.database ?? '');
        q.set('precision', 'nanosecond');
        return `api/v3/write_lp?${q}`;
    }
  }

  authHeaders(): Record<string, string> {
    const o = this.opts;
    if (o.token) return { authorization: `${o.flavour === '3' ? 'Bearer' : 'Token'} ${o.token}` };
    if (o.username)
      return {
        authorization: `Basic ${Buffer.from(`${o.username}:${o.password ?? ''}`).toString('base64')}`,
      };
    return {};
  }

  /** POSTs newline-separated line protocol; resolves with any HTTP answer, rejects with NetworkError. */
  async write(body: Buffer, signal?: AbortSignal): Promise<HttpResult> {
    const headers: Record<string, string> = {
      'content-type': 'text/plain; charset=utf-8',
      ...this.authHeaders(),
    };
    let payload = body;
    const min = this.opts.gzipMinBytes ?? 0;
    if (min > 0 && body.length >= min) {
      payload = await gzip(body, { level: 1 });
      headers['content-encoding'] = 'gzip';
    }
    return this.request('POST', this.writePath(), payload, headers, signal);
  }

  request(
    method: string,
    path: string,
    body?: Buffer | string,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<HttpResult> {
    const url = new URL(path, this.base);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            ...headers,
            ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}),
          },
          timeout: this.timeoutMs,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size <= MAX_RESPONSE_BYTES) chunks.push(c);
          });
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          res.on('error', (err: NodeJS.ErrnoException) => reject(new NetworkError(err.message, err.code)));
        },
      );
      req.on('timeout', () =>
        req.destroy(new NetworkError(`no answer within ${this.timeoutMs} ms`, 'ETIMEDOUT')),
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          err instanceof NetworkError ? err : new NetworkError(describeNetworkError(err, url), err.code),
        ),
      );
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function describeNetworkError(err: NodeJS.ErrnoException, url: URL): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return `nothing listens on ${url.host} (connection refused)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host ${url.hostname} not found (DNS)`;
    case 'ECONNRESET':
      return `${url.host} closed the connection`;
    default:
      return err.code?.startsWith('ERR_TLS') || /certificate|SSL/i.test(err.message)
        ? `TLS: ${err.message}`
        : err.message;
  }
}

/** InfluxDB's own error text from a response body (`{"error": ...}`, `{"message": ...}` or plain text). */
export function influxErrorText(res: HttpResult): string {
  const text = res.body.trim();
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown; data?: unknown };
    const msg = typeof j.error === 'string' ? j.error : typeof j.message === 'string' ? j.message : undefined;
    if (msg !== undefined) return j.data !== undefined ? `${msg}: ${JSON.stringify(j.data)}` : msg;
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 1000) || `HTTP ${res.status}`;
}
