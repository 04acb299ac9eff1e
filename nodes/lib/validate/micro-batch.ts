/**
 * Validation of a micro-batch (nodes/lib/ingest/micro-batch.ts): publications of one or many devices in one
 * message. Each publication is judged exactly as a message of its own would be (its device's schema, the
 * duplicate window, `ts` and limits per reading); the valid readings leave as one batch of parallel arrays,
 * each refused reading as its own refusal.
 */
import type { DeviceRef } from '../device-id';
import { addParts, type AckRefs } from '../ingest/ack-ledger';
import type { Rejection } from '../rejection';
import type { Refusal } from './options';
import { validatePayload, type ValidateContext } from './readings';
import type { ReadingSchema } from './schema';

/** The valid readings of a batch: the message contract's parallel arrays (nodes/lib/batch.ts). */
export interface ReadingBatch {
  payload: Record<string, unknown>[];
  device: (DeviceRef | undefined)[];
  ackId: (number | null)[];
  timestamp: number[];
  messageId: string[];
}

export interface RefusedReading {
  /** `details.index`: the publication's position in the micro-batch; `details.reading`: the reading's
   *  position in the publication when the publication was an array. */
  rejection: Rejection;
  /** The publication's position in the micro-batch. */
  publication: number;
  device: DeviceRef | undefined;
  ackId: number | null;
  /** The refused reading as the device sent it, or the whole publication when it was refused as a whole. */
  payload: unknown;
}

export interface MicroBatchVerdict {
  valid: ReadingBatch;
  refused: RefusedReading[];
}

/** The compiled schema for a device, or the refusal its readings get when it has none. */
export type SchemaLookup = (device: DeviceRef | undefined) => ReadingSchema | Refusal;

/**
 * Judges every publication of a micro-batch. `ctx.now`, `limits`, `window` and `duplicates` apply to all;
 * `ctx.schema`, `noSchema` and `deviceId` are set per publication (ctx is the caller's reused object).
 * A publication with an ack id that ends as k > 1 parts (readings, refusals) gets k - 1 more references, so
 * its acknowledgement waits until every part is durable.
 */
export function validateMicroBatch(
  payloads: readonly unknown[],
  devices: readonly unknown[],
  ackIds: unknown,
  ctx: ValidateContext,
  schemaFor: SchemaLookup,
  ledger: AckRefs,
): MicroBatchVerdict {
  const valid: ReadingBatch = { payload: [], device: [], ackId: [], timestamp: [], messageId: [] };
  const refused: RefusedReading[] = [];
  for (let p = 0; p < payloads.length; p++) {
    const device = asDevice(devices[p]);
    const ackId = ackIdAt(ackIds, p);
    useSchema(ctx, schemaFor(device));
    ctx.deviceId = device?.id;
    ctx.ackId = ackId;
    const verdict = validatePayload(payloads[p], ctx);
    for (const a of verdict.accepted) {
      valid.payload.push(a.fields);
      valid.device.push(device);
      valid.ackId.push(ackId);
      valid.timestamp.push(a.timestamp);
      valid.messageId.push(a.messageId);
    }
    for (const r of verdict.rejected) {
      const details = r.rejection.details as Record<string, unknown> | undefined;
      r.rejection.details =
        r.index === undefined ? { ...details, index: p } : { ...details, index: p, reading: r.index };
      refused.push({
        rejection: r.rejection,
        publication: p,
        device,
        ackId,
        payload: r.index === undefined ? payloads[p] : r.value,
      });
    }
    addParts(ledger, ackId, verdict.accepted.length + verdict.rejected.length);
  }
  return { valid, refused };
}

/** Sets the schema (or the reason there is none) that the next `validatePayload` call applies. */
export function useSchema(ctx: ValidateContext, choice: ReadingSchema | Refusal): void {
  if ('code' in choice) {
    ctx.schema = undefined;
    ctx.noSchema = choice;
  } else {
    ctx.schema = choice;
    ctx.noSchema = undefined;
  }
}

/** A micro-batch's `ackId` is an array parallel to its payload; anything else holds no acknowledgement. */
function ackIdAt(ackIds: unknown, index: number): number | null {
  const id: unknown = Array.isArray(ackIds) ? (ackIds as unknown[])[index] : null;
  return typeof id === 'number' ? id : null;
}

function asDevice(value: unknown): DeviceRef | undefined {
  return typeof value === 'object' && value !== null ? (value as DeviceRef) : undefined;
}
