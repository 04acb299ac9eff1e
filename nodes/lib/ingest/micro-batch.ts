import type { DeviceRef } from '../device-id';

/**
 * A micro-batch: publications of one or many devices in one Node-RED message, so that the flow's routing
 * cost (a few µs per message per hop) is paid once per batch instead of once per reading.
 *
 * Shape (parallel arrays; element i is one publication exactly as the device sent it):
 *   msg.payload: (Buffer | string)[]   the publication's body, not yet parsed
 *   msg.device:  DeviceRef[]           who sent it (authenticated)
 *   msg.ackId:   (number | null)[]     its held acknowledgement (see ack-ledger.ts), null when none is held
 *   msg.topic:   'batch'
 * `msg.device` being an array is what marks a micro-batch of publications. iotb-validate parses each
 * publication (one reading or an array of readings) and sends the valid readings on as one batch in the
 * message contract's batch shape; each refused reading leaves alone with its reason.
 */
export interface MicroBatch {
  topic: 'batch';
  payload: (Buffer | string)[];
  device: DeviceRef[];
  ackId: (number | null)[];
}

/** Is this message a micro-batch of publications (as opposed to one publication or one device's readings)? */
export function isMicroBatch(msg: { device?: unknown }): boolean {
  return Array.isArray(msg.device);
}

export interface MicroBatchOptions {
  /** Publications per batch at most; 1 sends each publication as a message of its own. */
  maxCount: number;
  /** How long the first publication of a batch waits for others, in ms. */
  maxWaitMs: number;
}

/**
 * Collects publications into micro-batches, bounded by count and time. Arrays are filled in place and handed
 * over whole, so a busy source allocates three arrays per batch, not an object per publication.
 */
export class MicroBatcher {
  private payload: (Buffer | string)[] = [];
  private device: DeviceRef[] = [];
  private ackId: (number | null)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: MicroBatchOptions,
    private readonly emit: (batch: MicroBatch) => void,
  ) {}

  /** Publications waiting for their batch to be sent. */
  get pending(): number {
    return this.payload.length;
  }

  push(device: DeviceRef, payload: Buffer | string, ackId: number | null): void {
    this.payload.push(payload);
    this.device.push(device);
    this.ackId.push(ackId);
    if (this.payload.length >= this.opts.maxCount) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.maxWaitMs);
  }

  /** Sends what is collected now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.payload.length === 0) return;
    const batch: MicroBatch = {
      topic: 'batch',
      payload: this.payload,
      device: this.device,
      ackId: this.ackId,
    };
    this.payload = [];
    this.device = [];
    this.ackId = [];
    this.emit(batch);
  }

  /** Drops what is collected without sending it: the source is closing and will not acknowledge it. */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.payload = [];
    this.device = [];
    this.ackId = [];
  }
}
