/**
 * Recovery at open, after a clean close or a crash: removes what an interrupted write left behind, deletes
 * segments that were fully acknowledged, counts the records of the rest (from their seals where they match,
 * otherwise by walking their frames) and cuts off a torn tail of the segment that was being written.
 */
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fsyncDir } from '../atomic-file';
import { processAlive } from '../process-alive';
import type { AckPosition } from './ack-file';
import { TAKE, walkFrames } from './frame';
import { errnoOf, readSeal, SCAN_CHUNK, SEAL_FILE, SEGMENT_FILE, segmentPath, type Segment } from './segment';
import type { SpoolPosition } from './types';

/** Temp files of an interrupted atomic write (ack position, seal); only the lock holder writes them. */
const STALE_TMP = /^(?:ack\.json|ack\.pos|\d{12}\.seg\.sealed)\.\d+\.tmp$/;
/** Left by a process that crashed while taking the lock; removed only when that process is gone. */
const STALE_LOCK_TMP = /^LOCK\.(?:stale\.)?(\d+)(?:\.tmp)?$/;

/** Removes temp files that a crashed process left behind (the caller holds the lock). */
export function removeStaleFiles(dir: string, names: string[]): void {
  for (const name of names) {
    const lockPid = STALE_LOCK_TMP.exec(name)?.[1];
    const stale = STALE_TMP.test(name) || (lockPid !== undefined && !processAlive(Number(lockPid)));
    if (!stale) continue;
    try {
      unlinkSync(join(dir, name));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
}

/** The segments found at open, and what was repaired on the way. */
export interface RecoveredSegments {
  /** From the one holding the ack position to the last, which is open for writing at `writeFd`. */
  segments: Segment[];
  writeFd: number;
  /** The ack position in the first segment (sequence numbers count from it). */
  ackPos: SpoolPosition;
  /** Segments whose frames were walked (not counted from their seal). */
  scannedSegments: number;
  corruptSkipped: number;
  corruptBytes: number;
  tornTailBytesTruncated: number;
}

/**
 * Opens the segments of `dir` (`names`: its entries) from the ack position on. Segments before it were fully
 * acknowledged (a crash came before their deletion) and are deleted; with none left, an empty one is created.
 */
export async function recoverSegments(
  dir: string,
  names: string[],
  ack: AckPosition,
): Promise<RecoveredSegments> {
  const ids = names
    .map((n) => SEGMENT_FILE.exec(n)?.[1])
    .filter((id): id is string => id !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const kept = ids.findIndex((id) => id >= ack.segment);
  for (const id of ids.splice(0, kept < 0 ? ids.length : kept)) unlinkSync(segmentPath(dir, id));
  if (ids.length === 0) {
    const id = Math.max(ack.segment, 1);
    closeSync(openSync(segmentPath(dir, id), 'wx', 0o600));
    fsyncDir(dir);
    ids.push(id);
  }
  for (const name of names) {
    const sealed = SEAL_FILE.exec(name)?.[1];
    if (sealed !== undefined && !ids.includes(Number(sealed))) unlinkSync(join(dir, name));
  }
  const found: RecoveredSegments = {
    segments: [],
    writeFd: -1,
    ackPos: { segment: ids[0], offset: 0, seq: 0 },
    scannedSegments: 0,
    corruptSkipped: 0,
    corruptBytes: 0,
    tornTailBytesTruncated: 0,
  };
  let seq = 0;
  for (const [i, id] of ids.entries()) {
    const first = i === 0;
    const last = i === ids.length - 1;
    const file = segmentPath(dir, id);
    const fd = openSync(file, last ? 'r+' : 'r');
    try {
      const size = fstatSync(fd).size;
      const from = first && id === ack.segment ? Math.min(ack.offset, size) : 0;
      const seg: Segment = { id, file, size, endSeq: 0, records: undefined, damaged: new Map() };
      // A sealed segment is counted from its seal (the first one with the ack file's count of records
      // before the ack offset); the reader checks its frames anyway. The last one is always scanned.
      const sealed = last ? undefined : readSeal(seg);
      let records: number | undefined;
      if (sealed !== undefined && from === 0) records = sealed;
      else if (sealed !== undefined && ack.records !== undefined && ack.records <= sealed)
        records = sealed - ack.records;
      if (records === undefined) {
        records = await scan(fd, seg, from, last, found);
        found.scannedSegments++;
      }
      seg.records = from === 0 ? records : sealed;
      seq += records;
      seg.endSeq = seq;
      if (first) found.ackPos = { segment: id, offset: from, seq: 0 };
      found.segments.push(seg);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (last) found.writeFd = fd;
    else closeSync(fd);
  }
  return found;
}

/**
 * Counts the frames of `seg` from `from`. The last segment — the one a crash can have torn — is checked
 * frame by frame: its damaged regions are recorded, and damage with nothing intact after it (a write
 * interrupted by a crash) is cut off. Older segments are only counted by their headers; the reader checks
 * their CRCs (and reports damage) when it gets there, as for sealed segments.
 */
async function scan(
  fd: number,
  seg: Segment,
  from: number,
  last: boolean,
  found: RecoveredSegments,
): Promise<number> {
  const damaged: Array<[number, number]> = [];
  let records = 0;
  await walkFrames(
    fd,
    from,
    seg.size,
    { chunkBytes: SCAN_CHUNK, fresh: false, verify: last },
    {
      frame: () => {
        records++;
        return TAKE;
      },
      knownDamage: () => undefined,
      damaged: (a, b) => void damaged.push([a, b]),
    },
  );
  if (!last) return records;
  const tail = damaged.at(-1);
  if (tail !== undefined && tail[1] === seg.size) {
    damaged.pop();
    ftruncateSync(fd, tail[0]);
    fsyncSync(fd);
    found.tornTailBytesTruncated += seg.size - tail[0];
    seg.size = tail[0];
  }
  for (const [a, b] of damaged) {
    seg.damaged.set(a, b);
    found.corruptSkipped++;
    found.corruptBytes += b - a;
  }
  return records;
}
