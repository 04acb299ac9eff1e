/** What the spool's callers see: positions, batches, statistics, the recovery report, events and errors. */
import type { WhenFull } from './options';

export interface SpoolStats {
  pendingRecords: number;
  pendingBytes: number;
  segments: number;
  /** Counters since this spool was opened. */
  appendedTotal: number;
  ackedTotal: number;
  corruptSkipped: number;
  tornTailBytesTruncated: number;
  droppedOldest: number;
  refusedFull: number;
  /** Appends are refused because maxBytes is reached (until an append succeeds or a delivery frees room). */
  full: boolean;
  /** The last append failed with ENOSPC/EDQUOT (until an append succeeds). */
  diskFull: boolean;
  /** The last failure, e.g. 'ENOSPC: disk full' while appends are stopped; cleared when appends work again. */
  lastError?: string;
}

/** Whether a spool can take more data, and how much room is left on its volume (for health reports). */
export interface SpoolCondition {
  pendingBytes: number;
  maxBytes: number;
  /** Appends are refused: maxBytes is reached. */
  full: boolean;
  /** The last append failed for lack of space on the volume. */
  diskFull: boolean;
  /** statfs of the volume (free as available to this process's user); absent where statfs fails. */
  freeBytes?: number;
  sizeBytes?: number;
  /** Free space below this counts as low: room for less than two more segments. */
  lowBytes: number;
}

/**
 * A place in the spool: the segment, the byte offset in it, and the record sequence number (counted from the
 * ack position when the spool was opened). Positions are only meaningful to the Spool instance that made them.
 */
export interface SpoolPosition {
  readonly segment: number;
  readonly offset: number;
  readonly seq: number;
}

export interface SpoolBatch {
  records: Buffer[];
  /** Position after the last record: pass it to ack() once the records are delivered. */
  end: SpoolPosition;
  /** Sum of the records' lengths. */
  bytes: number;
}

/** What open() found and repaired. */
export interface RecoveryReport {
  ms: number;
  segments: number;
  /** Segments read through at open (the first and the last; others only without a valid seal). */
  scannedSegments: number;
  pendingRecords: number;
  pendingBytes: number;
  corruptSkipped: number;
  corruptBytes: number;
  tornTailBytesTruncated: number;
}

export interface CorruptEvent {
  file: string;
  offset: number;
  bytes: number;
}

export interface FullEvent {
  policy: WhenFull;
  /** Records refused (policy 'refuse') or dropped (policy 'drop-oldest'). */
  records: number;
}

export interface SpoolEvents {
  /** Records written (and, with fsync 'always', synced). */
  appended: [records: number];
  /** Spool full: an append was refused, or oldest records were dropped. */
  full: [event: FullEvent];
  /** The disk is full: appends stop (existing data is intact) until a write succeeds again. */
  diskFull: [error: SpoolDiskFullError];
  /** Appends work again after a disk-full period. */
  recovered: [];
  /** Damaged bytes were skipped while reading. */
  corrupt: [event: CorruptEvent];
}

export class SpoolFullError extends Error {
  readonly code = 'SPOOL_FULL';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolFullError';
  }
}

export class SpoolDiskFullError extends Error {
  readonly code = 'ENOSPC';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolDiskFullError';
  }
}
