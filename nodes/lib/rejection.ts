import { rejectedTotal } from './metrics';

/** Where in the pipeline a message was judged and refused. */
export type RejectionStage = 'auth' | 'validate' | 'quality' | 'influx' | 'command' | 'registry' | 'broker';

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

/** Builds a rejection and counts it in `iotb_rejected_total{stage,code}`: no refusal goes uncounted. */
export function rejection(stage: RejectionStage, code: string, reason: string, details?: unknown): Rejection {
  rejectedTotal.labels(stage, code).inc();
  return details === undefined ? { stage, code, reason } : { stage, code, reason, details };
}
