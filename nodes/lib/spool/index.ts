/**
 * A durable on-disk spool: an append-only log of records (e.g. line-protocol points) that a sender reads,
 * delivers and acknowledges. See docs/storage-spool.md for the format, the fsync policies and what each can
 * lose on power failure.
 *
 * The parts: `spool.ts` (the Spool class: appending, reading, acknowledging, the full policies), `options.ts`
 * (options and their defaults), `types.ts` (what callers see, events and errors), `segment.ts` (segment files
 * and their seals), `recovery.ts` (opening the segments after a crash), `frame.ts` (the record framing),
 * `ack-file.ts` (the ack position on disk), `lock.ts` (one process per spool directory).
 */
export { Spool } from './spool';
export { SpoolLockedError } from './lock';
export type { FsyncPolicy, SpoolOptions, WhenFull } from './options';
export {
  SpoolDiskFullError,
  SpoolFullError,
  type CorruptEvent,
  type FullEvent,
  type RecoveryReport,
  type SpoolBatch,
  type SpoolCondition,
  type SpoolEvents,
  type SpoolPosition,
  type SpoolStats,
} from './types';
