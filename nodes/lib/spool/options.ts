/** The spool's options as given, and the settings they resolve to (defaults filled in, checked). */
import { statfsSync } from 'node:fs';

export type FsyncPolicy = 'always' | 'interval' | 'never';
export type WhenFull = 'refuse' | 'drop-oldest';

export interface SpoolOptions {
  /** Created if missing; holds the segments, the ack position and LOCK. */
  dir: string;
  /**
   * Size at which a new segment file is started; space is freed a whole segment at a time. Default: a sixteenth
   * of maxBytes or of the volume the spool is on, whichever is smaller, between 64 KiB and 64 MiB. At most a
   * quarter of maxBytes.
   */
  segmentBytes?: number;
  /** Bound on unacknowledged data on disk (frames included). Default 1 GiB. */
  maxBytes?: number;
  /** Default 'interval'. */
  fsync?: FsyncPolicy;
  /** Default 1000. */
  fsyncIntervalMs?: number;
  /** Default 'refuse'. */
  whenFull?: WhenFull;
}

/** The options with every default filled in. */
export interface Settings {
  dir: string;
  segmentBytes: number;
  maxBytes: number;
  fsync: FsyncPolicy;
  fsyncIntervalMs: number;
  whenFull: WhenFull;
}

const MiB = 1024 * 1024;
const DERIVED_SEGMENT_MIN = 64 * 1024;
const DERIVED_SEGMENT_MAX = 64 * MiB;

/** Size of the filesystem holding `dir`, or undefined where statfs is not available. */
export function volumeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.blocks * s.bsize;
  } catch {
    return undefined;
  }
}

/** A bad option's value in an error message: text as it is, anything else by its type. */
function shown(v: unknown): string {
  return typeof v === 'string' ? v : typeof v;
}

export function settings(opts: SpoolOptions, volume: number | undefined): Settings {
  // Checked as given: a caller in JavaScript, or values from a flow, may pass anything.
  const given = opts as Partial<Record<keyof SpoolOptions, unknown>> | null | undefined;
  if (typeof given?.dir !== 'string' || given.dir === '') throw new TypeError('spool: dir is required');
  const fsync = given.fsync ?? 'interval';
  if (fsync !== 'always' && fsync !== 'interval' && fsync !== 'never')
    throw new TypeError(`spool: fsync must be 'always', 'interval' or 'never' (got ${shown(fsync)})`);
  const whenFull = given.whenFull ?? 'refuse';
  if (whenFull !== 'refuse' && whenFull !== 'drop-oldest')
    throw new TypeError(`spool: whenFull must be 'refuse' or 'drop-oldest' (got ${shown(whenFull)})`);
  const atLeast = (
    name: 'maxBytes' | 'segmentBytes' | 'fsyncIntervalMs',
    def: number,
    min: number,
  ): number => {
    const n = given[name] ?? def;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < min)
      throw new RangeError(`spool: ${name} must be a number >= ${min}`);
    return Math.floor(n);
  };
  const maxBytes = atLeast('maxBytes', 1024 * MiB, 64 * 1024);
  // Space is freed a whole segment at a time, so a segment is at most a quarter of the bound, and by default
  // small against the bound and the volume: on a volume of a few MiB delivered data is freed soon.
  const derived = Math.min(
    DERIVED_SEGMENT_MAX,
    Math.max(DERIVED_SEGMENT_MIN, Math.min(maxBytes, volume ?? Infinity) / 16),
  );
  const segmentBytes = Math.min(atLeast('segmentBytes', derived, 4096), maxBytes / 4);
  return {
    dir: given.dir,
    segmentBytes: Math.floor(segmentBytes),
    maxBytes,
    fsync,
    fsyncIntervalMs: atLeast('fsyncIntervalMs', 1000, 1),
    whenFull,
  };
}
