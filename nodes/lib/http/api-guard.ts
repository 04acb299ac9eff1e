import type { IncomingMessage, ServerResponse } from 'node:http';
import { Throttle } from '../throttle';
import { inspectReading, parsePayload, type ValidateLimits } from '../validate';

/**
 * The HTTP API's front door: every request under the API path passes here before any route, body parser or
 * flow. A body must be JSON (415 otherwise) and within the size limit (413, decided from Content-Length
 * before a byte is read); it is parsed with the package's own safe parser (no recursion, so a 100,000-deep
 * array is one linear scan; 1e400 and NaN refused), so nothing downstream meets a number JSONata cannot hold
 * or a structure that overflows the stack. A route whose body is a device's payload gets the raw bytes:
 * iotb-validate parses them, counts the refusal per device and applies its own limits.
 */

/** What the guard reads of a request (Express adds `body`/`_body`; body parsers skip a request with `_body`). */
export type GuardedRequest = IncomingMessage & { body?: unknown; _body?: boolean };

export interface ApiRefusal {
  status: number;
  code: string;
  reason: string;
}

export interface ApiGuardOptions {
  /** Largest accepted body in bytes. */
  maxBodyBytes: number;
  /** Structure limits for the bodies the guard parses. */
  limits: ValidateLimits;
  /**
   * True for a route whose body is a device's payload: it stays raw bytes (also as text/plain) for the flow to
   * parse (`path` relative to the API path, without the query).
   */
  rawBody: (method: string, path: string) => boolean;
  /**
   * True for a route that reads its body as a stream itself (a firmware image upload): passed on unread, with
   * no type or size check here; the route applies its own.
   */
  streamedBody: (method: string, path: string) => boolean;
  /** Called once for every refused request, after the answer is on its way. */
  onRefused: (refusal: ApiRefusal, method: string, path: string) => void;
}

type Next = (err?: unknown) => void;

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
/** A device payload may also come as text/plain (signed bodies were sent so before they reached the flow raw). */
const TEXT_TYPE = /^text\/plain\s*(?:;|$)/i;

/** An Express-style middleware for the API path (mounted so that `req.url` is relative to it). */
export function apiGuard(opts: ApiGuardOptions) {
  return function guardApiRequest(req: GuardedRequest, res: ServerResponse, next: Next): void {
    const path = requestPath(req);
    const refuse = (status: number, code: string, reason: string): void => {
      const refusal = { status, code, reason };
      answer(res, status, { code, reason });
      opts.onRefused(refusal, req.method ?? '', path);
    };
    const length = req.headers['content-length'];
    const hasBody =
      req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    // Already read by Node-RED (a route with its "skip body parsing" option): the route takes it as it is.
    if (!hasBody || req._body === true || opts.streamedBody(req.method ?? '', path)) return next();
    const raw = opts.rawBody(req.method ?? '', path);
    const type = req.headers['content-type'];
    if (type === undefined || !(JSON_TYPE.test(type) || (raw && TEXT_TYPE.test(type)))) {
      drain(req);
      return refuse(
        415,
        'UNSUPPORTED_MEDIA_TYPE',
        `the body must be JSON sent as Content-Type: application/json (got ${type === undefined ? 'none' : JSON.stringify(type.slice(0, 100))})`,
      );
    }
    const declared = length === undefined ? undefined : Number(length);
    if (declared !== undefined && declared > opts.maxBodyBytes) {
      drain(req);
      return refuse(413, 'TOO_LARGE', tooLarge(declared, opts.maxBodyBytes));
    }
    readBody(req, opts.maxBodyBytes, (outcome) => {
      if (outcome === 'aborted') return; // the client is gone: nobody to answer
      if (outcome === 'too-large') {
        drain(req);
        return refuse(413, 'TOO_LARGE', tooLarge(undefined, opts.maxBodyBytes));
      }
      req._body = true;
      if (raw) {
        req.body = outcome;
        return next();
      }
      const parsed = parseBody(outcome, opts.limits);
      if ('refusal' in parsed) {
        const { code, reason } = parsed.refusal;
        return refuse(code === 'TOO_LARGE' ? 413 : 400, code, reason);
      }
      req.body = parsed.value;
      next();
    });
  };
}

/** The request's path relative to where the handler is mounted, without the query. */
export function requestPath(req: IncomingMessage): string {
  return (req.url ?? '/').split('?', 1)[0];
}

/** An API body: one JSON object within the limits, every number finite. */
export function parseBody(
  bytes: Buffer,
  limits: ValidateLimits,
): { value: object } | { refusal: ApiRefusal } {
  const parsed = parsePayload(bytes, limits);
  if (!parsed.ok) return { refusal: { status: 400, ...parsed.refusal } };
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { refusal: { status: 400, code: 'NOT_OBJECT', reason: 'the body must be a JSON object' } };
  }
  const problem = inspectReading(value, limits, 1);
  return problem ? { refusal: { status: 400, ...problem } } : { value };
}

/** The answer for a path under the API that no route serves. */
export function apiNotFound(method: string, path: string, res: ServerResponse): ApiRefusal {
  const refusal = { status: 404, code: 'NOT_FOUND', reason: `no API route ${method} ${path.slice(0, 200)}` };
  if (!res.headersSent) answer(res, 404, { code: refusal.code, reason: refusal.reason });
  return refusal;
}

/** The answer for an error no route handled: a fixed sentence, never the error's text or stack. */
export function apiInternalError(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  answer(res, 500, { code: 'INTERNAL', reason: 'the request failed inside the server; see the server log' });
}

export function answer(res: ServerResponse, status: number, body: { code: string; reason: string }): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('Cache-Control', 'no-store');
  res.end(text);
}

/** Reads a body of at most `limit` bytes; 'too-large' as soon as it is known to be more. */
function readBody(
  req: IncomingMessage,
  limit: number,
  done: (outcome: Buffer | 'too-large' | 'aborted') => void,
): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (outcome: Buffer | 'too-large' | 'aborted'): void => {
    if (settled) return;
    settled = true;
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onAbort);
    req.off('aborted', onAbort);
    done(outcome);
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > limit) {
      settle('too-large');
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = (): void => {
    settle(Buffer.concat(chunks, size));
  };
  const onAbort = (): void => {
    settle('aborted');
  };
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onAbort);
  req.on('aborted', onAbort);
}

/**
 * Discards the rest of a refused body unread: the client can finish sending and read the answer on a
 * connection that stays usable (Node's request timeout bounds a client that never stops).
 */
function drain(req: IncomingMessage): void {
  req.on('error', () => undefined);
  req.resume();
}

function tooLarge(bytes: number | undefined, limit: number): string {
  return bytes === undefined
    ? `the body is larger than the limit of ${limit} bytes`
    : `the body is ${bytes} bytes, more than the limit of ${limit}`;
}

/**
 * One log line per burst: the first refusal is logged at once, the ones that follow within the interval
 * are counted by code and logged as one line when it ends.
 */
export class BurstLog {
  private readonly counts = new Map<string, number>();
  private example = '';
  private readonly throttle: Throttle<[]>;

  constructor(
    private readonly write: (line: string) => void,
    private readonly what: string,
    intervalMs = 10_000,
  ) {
    this.throttle = new Throttle(() => {
      this.flush();
    }, intervalMs);
  }

  note(code: string, example: string): void {
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    this.example = example;
    this.throttle.call();
  }

  close(): void {
    this.throttle.cancel();
  }

  private flush(): void {
    let total = 0;
    const parts: string[] = [];
    for (const [code, n] of this.counts) {
      total += n;
      parts.push(`${code} ${n}`);
    }
    this.counts.clear();
    if (total === 0) return;
    this.write(
      total === 1
        ? `${this.what}: ${this.example}`
        : `${total} ${this.what} (${parts.join(', ')}); last: ${this.example}`,
    );
  }
}
