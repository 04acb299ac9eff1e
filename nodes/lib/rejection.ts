import { rejectedTotal } from './metrics';

/** Where in the pipeline a message was judged and refused. */
export type RejectionStage =
  'auth' | 'validate' | 'quality' | 'influx' | 'command' | 'registry' | 'broker' | 'twin';

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
