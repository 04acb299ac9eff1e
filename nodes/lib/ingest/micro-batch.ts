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
  /**
   * Adaptive time bound (default `maxWaitMs`: fixed). While batches close on time with at least a tenth of
   * `maxCount` (steady traffic that fills a batch slowly), the wait doubles up to this; a batch that closes on
   * time with less (light traffic) sets it back to `maxWaitMs`. Fuller batches cost less CPU per reading; the
   * price is latency, at most this bound.
   */
  maxAdaptiveWaitMs?: number;
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
  private readonly onTime = (): void => this.flush(true);
  /** The current time bound, between `maxWaitMs` and `maxAdaptiveWaitMs`. */
  private waitMs: number;
  private readonly maxWaitMs: number;
  private readonly steadyCount: number;

  constructor(
    private readonly opts: MicroBatchOptions,
    private readonly emit: (batch: MicroBatch) => void,
  ) {
    this.waitMs = opts.maxWaitMs;
    this.maxWaitMs = Math.max(opts.maxWaitMs, opts.maxAdaptiveWaitMs ?? opts.maxWaitMs);
    this.steadyCount = Math.max(2, Math.ceil(opts.maxCount / 10));
  }

  /** The time bound the next batch gets, in ms. */
  get currentWaitMs(): number {
    return this.waitMs;
  }

  /** Publications waiting for their batch to be sent. */
  get pending(): number {
    return this.payload.length;
  }

  push(device: DeviceRef, payload: Buffer | string, ackId: number | null): void {
    this.payload.push(payload);
    this.device.push(device);
    this.ackId.push(ackId);
    if (this.payload.length >= this.opts.maxCount) this.flush();
    else if (!this.timer) this.timer = setTimeout(this.onTime, this.waitMs);
  }

  /** Sends what is collected now; `onTime`: the time bound closed it (adapts the bound). */
  flush(onTime = false): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (onTime)
      this.waitMs =
        this.payload.length >= this.steadyCount
          ? Math.min(this.waitMs * 2, this.maxWaitMs)
          : this.opts.maxWaitMs;
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
