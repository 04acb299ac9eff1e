import { rejectedTotal } from './metrics';

/** Where in the pipeline a message was judged and refused. */
export type RejectionStage =
  'api' | 'auth' | 'validate' | 'quality' | 'influx' | 'command' | 'registry' | 'broker' | 'twin';

/**
 * Why a message left through a node's "rejected" output (docs/architecture.md, message contract).
 * `code` is stable for machines; `reason` is a sentence a person understands.
 */
export interface Rejection {
  stage: RejectionStage;
  code: string;
  reason: string;
  details?: unknown;
}

/** A refusal raised inside nodes/lib; node glue turns it into `msg.rejection`. */
export class RejectionError extends Error {
  readonly rejection: Rejection;

  constructor(stage: RejectionStage, code: string, reason: string, details?: unknown) {
    super(reason);
    this.name = 'RejectionError';
    this.rejection = rejection(stage, code, reason, details);
  }
}

// eslint-disable-next-line no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f]|\p{Cs}/gu;
const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * A reason as one line of valid Unicode: control characters and unpaired surrogates (a device's text quoted
 * in a reason may carry them) become JSON-style escapes, so the reason can be logged and stored (InfluxDB
 * string fields take neither line breaks nor lone surrogates) instead of the rejection itself being refused.
 */
export function printableReason(reason: string): string {
  UNPRINTABLE.lastIndex = 0;
  if (!UNPRINTABLE.test(reason)) return reason;
  return reason.replace(
    UNPRINTABLE,
    (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Builds a rejection and counts it in `iotb_rejected_total{stage,code}`: no refusal goes uncounted. */
export function rejection(stage: RejectionStage, code: string, reason: string, details?: unknown): Rejection {
  rejectedTotal.labels(stage, code).inc();
  const text = printableReason(reason);
  return details === undefined ? { stage, code, reason: text } : { stage, code, reason: text, details };
}

/**
 * The HTTP status a refusal answers with on the HTTP API (docs/backend.md, HTTP API), by its code; every
 * other code is a bad request (400). iotb-auth answers with its own 401/403/429.
 */
const HTTP_STATUS: Readonly<Partial<Record<string, number>>> = {
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  UNKNOWN_DEVICE: 404,
  CONFLICT: 409,
  KILL_SWITCH: 409,
  SAFE_MODE: 409,
  DUPLICATE_ID: 409,
  NOT_CANCELABLE: 409,
  DEVICE_DISABLED: 409,
  DEVICE_REVOKED: 409,
  TOO_LARGE: 413,
  QUEUE_FULL: 429,
  RATE_LIMITED: 429,
  // Nothing of the request was stored: the client sends it again later.
  SPOOL_FULL: 503,
  DISK_FULL: 503,
  CONFIG_INVALID: 503,
  NO_CONFIG: 503,
  STORE_FAILED: 503,
};
const RETRY_AFTER_S: Readonly<Partial<Record<string, number>>> = { SPOOL_FULL: 5, DISK_FULL: 5 };

export function httpStatusOf(code: string): number {
  return HTTP_STATUS[code] ?? 400;
}

interface RefusableMessage {
  rejection?: Rejection;
  res?: unknown;
  statusCode?: number;
  headers?: Record<string, unknown>;
}

/**
 * Puts the refusal on the message; a message of an HTTP request (`msg.res`, from an `http in` node) also
 * gets the status to answer with (and `Retry-After` when sending again later can succeed), so an `http
 * response` after a change node that builds the `{code, reason, details}` body answers it correctly.
 */
export function refuseMessage(msg: object, r: Rejection): void {
  const m = msg as RefusableMessage;
  m.rejection = r;
  if (m.res === undefined) return;
  m.statusCode = httpStatusOf(r.code);
  const retryAfter = RETRY_AFTER_S[r.code];
  if (retryAfter !== undefined) m.headers = { ...m.headers, 'Retry-After': String(retryAfter) };
}
