/**
 * Segment files: the numbered files the spool appends frames to, their seals (size and record count, written
 * when a segment is finished), and the positioned writes and syncs on them.
 */
import { fdatasync, readFileSync, unlinkSync, write, writeSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';

const MiB = 1024 * 1024;
export const SEGMENT_FILE = /^(\d{12})\.seg$/;
/** Written when a segment is finished: its size and record count, so open() need not scan it. */
export const SEAL_FILE = /^(\d{12})\.seg\.sealed$/;
/** Bytes read per step when a segment is scanned at open, and at most per read of a batch. */
export const SCAN_CHUNK = 4 * MiB;

export interface Segment {
  id: number;
  file: string;
  /** Bytes of intact data (for the segment being written: the offset of the next frame). */
  size: number;
  /** Sequence number after the segment's last record. */
  endSeq: number;
  /** Intact frames in the whole file, when known (a segment scanned from its start or written here). */
  records: number | undefined;
  /** Damaged regions already counted: start offset -> end offset. */
  damaged: Map<number, number>;
}

export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export function segmentPath(dir: string, id: number): string {
  return join(dir, `${String(id).padStart(12, '0')}.seg`);
}

function sealFile(seg: Segment): string {
  return `${seg.file}.sealed`;
}

/** The record count from a segment's seal, if the seal matches the file. */
export function readSeal(seg: Segment): number | undefined {
  try {
    const v = JSON.parse(readFileSync(sealFile(seg), 'utf8')) as { size?: unknown; records?: unknown };
    if (v.size === seg.size && Number.isSafeInteger(v.records)) return v.records as number;
  } catch {
    // missing or unreadable: the segment is scanned instead
  }
  return undefined;
}

export function writeSeal(seg: Segment): void {
  if (seg.records === undefined) return;
  try {
    writeFileAtomicSync(sealFile(seg), JSON.stringify({ size: seg.size, records: seg.records }));
  } catch {
    // Without a seal the next open scans this segment; nothing else depends on it.
  }
}

export function unlinkSegment(seg: Segment): void {
  for (const file of [seg.file, sealFile(seg)]) {
    try {
      unlinkSync(file);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }
}

export function writeAll(fd: number, buf: Buffer, length: number, position: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done === length) return resolve();
      write(fd, buf, done, length - done, position + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

export function writeAllSync(fd: number, buf: Buffer, length: number, position: number): void {
  for (let done = 0; done < length;) done += writeSync(fd, buf, done, length - done, position + done);
}

export function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}
