import { TwinError, type TwinService, type TwinView } from './twin-service';

export const TWIN_OPERATIONS = ['get', 'patchDesired', 'list'] as const;
export type TwinOperation = (typeof TWIN_OPERATIONS)[number];

export interface TwinOperationInput {
  operation: TwinOperation;
  deviceId?: unknown;
  /** The merge patch (an object, or JSON text/bytes as an HTTP body of another content type arrives). */
  body?: unknown;
  /** `If-Match` (HTTP) or a number: the desired version the patch is based on. */
  ifMatch?: unknown;
  /** `type`, `where`, `limit`, `offset` for list. */
  query?: Record<string, unknown>;
}

export interface TwinOperationResult {
  statusCode: number;
  payload: unknown;
  headers?: Record<string, string>;
}

const DEFAULT_PAGE = 1000;
const MAX_PAGE = 10_000;

/**
 * The twin HTTP API as one call (docs/twin.md): GET a twin, PATCH desired with a merge patch and `If-Match`,
 * list twins. Refusals throw TwinError (its `status` is the HTTP status).
 */
export function runTwinOperation(twins: TwinService, input: TwinOperationInput): TwinOperationResult {
  switch (input.operation) {
    case 'get': {
      const id = deviceIdOf(input.deviceId);
      const view = twins.get(id);
      if (!view) throw new TwinError('UNKNOWN_DEVICE', `device "${id}" is not registered`);
      return answer(200, view);
    }
    case 'patchDesired': {
      const id = deviceIdOf(input.deviceId);
      const view = twins.patchDesired(id, patchOf(input.body), versionOf(input.ifMatch));
      return answer(200, view);
    }
    case 'list': {
      const q = input.query ?? {};
      const type = optionalString(q.type, 'type');
      const where = optionalString(q.where, 'where');
      const limit = count(q.limit, 'limit', DEFAULT_PAGE, MAX_PAGE);
      const offset = count(q.offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
      const all = twins.list({ type, where });
      return {
        statusCode: 200,
        payload: { total: all.length, offset, twins: all.slice(offset, offset + limit) },
      };
    }
    default:
      throw new TwinError(
        'INVALID',
        `unknown twin operation "${String(input.operation)}"; one of ${TWIN_OPERATIONS.join(', ')}`,
      );
  }
}

/** The answer with an ETag of the desired version, for the next `If-Match`. */
function answer(statusCode: number, view: TwinView): TwinOperationResult {
  return { statusCode, payload: view, headers: { ETag: `"${view.desired.version}"` } };
}

function deviceIdOf(v: unknown): string {
  if (typeof v !== 'string' || v === '') throw new TwinError('INVALID', 'a device id is required');
  return v;
}

function patchOf(body: unknown): unknown {
  if (typeof body !== 'string' && !Buffer.isBuffer(body)) return body;
  try {
    return JSON.parse(body.toString()) as unknown;
  } catch {
    throw new TwinError('INVALID', 'the body is not JSON (send a JSON merge patch object)');
  }
}

/** `If-Match: "3"`, `W/"3"`, `3` or a number -> 3; absent -> undefined; `*` -> undefined (any version). */
export function versionOf(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '' || v === '*') return undefined;
  if (typeof v === 'number') return v;
  const m = typeof v === 'string' ? /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(v) : null;
  if (!m) throw new TwinError('INVALID', 'If-Match must be the desired version, e.g. "3"');
  return Number(m[1]);
}

function optionalString(v: unknown, what: string): string | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') throw new TwinError('INVALID', `${what} must be given once, as text`);
  return v;
}

function count(v: unknown, what: string, fallback: number, max: number): number {
  if (v === undefined || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new TwinError('INVALID', `${what} must be a whole number from 0 to ${max}`);
  return n;
}
