import { read } from 'node:fs';
import * as zlib from 'node:zlib';

/**
 * Record framing in a segment file:
 *
 *   magic u32 BE | crc32 u32 BE | length u32 BE | payload (length bytes)
 *
 * The CRC covers the length field and the payload, so a damaged length is caught as well. The magic starts
 * with 0xF5, a byte that never occurs in UTF-8, so line protocol records cannot imitate a frame start; after
 * damage the reader finds the next frame by searching for the magic and checking that frame's CRC.
 */
const FRAME_MAGIC = 0xf59a1ce7;
export const HEADER_BYTES = 12;
/** Largest payload accepted in one record (InfluxDB's own default request limit is 25 MB for a whole batch). */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

const MAGIC_BYTES = Buffer.from([0xf5, 0x9a, 0x1c, 0xe7]);

type Crc32 = (data: NodeJS.ArrayBufferView, value?: number) => number;
const zlibCrc32 = (zlib as { crc32?: Crc32 }).crc32;

/** zlib.crc32 exists from Node 20.15 / 22.2; the spool refuses to start without it rather than hand-roll one. */
export function requireCrc32(): Crc32 {
  if (!zlibCrc32)
    throw new Error(`the spool needs zlib.crc32 (Node >= 20.15 or >= 22.2); this is Node ${process.version}`);
  return zlibCrc32;
}

/** Writes `records` as frames into `into` from `at`; returns the offset after the last frame. */
export function encodeFrames(records: readonly Uint8Array[], into: Buffer, at: number): number {
  const crc32 = requireCrc32();
  let o = at;
  for (const r of records) {
    into.writeUInt32BE(FRAME_MAGIC, o);
    into.writeUInt32BE(r.length, o + 8);
    into.set(r, o + HEADER_BYTES);
    const end = o + HEADER_BYTES + r.length;
    into.writeUInt32BE(crc32(into.subarray(o + 8, end)), o + 4);
    o = end;
  }
  return o;
}

const INCOMPLETE = 0;
const INVALID = -1;

/**
 * Checks the frame at `buf[off]` with `avail` bytes of it in the buffer. Returns the frame's total size when it
 * is complete and intact, INCOMPLETE when more bytes are needed to tell, INVALID when it is not a frame.
 * Without `verify` only the header is checked (magic and a plausible length), not the CRC.
 */
function checkFrame(buf: Buffer, off: number, avail: number, verify = true): number {
  if (avail < 4) return INCOMPLETE;
  if (buf.readUInt32BE(off) !== FRAME_MAGIC) return INVALID;
  if (avail < HEADER_BYTES) return INCOMPLETE;
  const len = buf.readUInt32BE(off + 8);
  if (len > MAX_RECORD_BYTES) return INVALID;
  if (avail < HEADER_BYTES + len) return INCOMPLETE;
  if (!verify) return HEADER_BYTES + len;
  const crc = requireCrc32()(buf.subarray(off + 8, off + HEADER_BYTES + len));
  return crc === buf.readUInt32BE(off + 4) ? HEADER_BYTES + len : INVALID;
}

/** Payload length of a frame that checkFrame accepted. */
function payloadLength(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off + 8);
}

/** Reads exactly `length` bytes (fewer only at end of file). */
async function readFully(fd: number, buf: Buffer, length: number, position: number): Promise<number> {
  let got = 0;
  while (got < length) {
    const n = await new Promise<number>((resolve, reject) => {
      read(fd, buf, got, length - got, position + got, (err, r) => (err ? reject(err) : resolve(r)));
    });
    if (n === 0) break;
    got += n;
  }
  return got;
}

const SEARCH_CHUNK = 1024 * 1024;

/**
 * Offset of the first intact frame in [from, end) of the file, or `end` when there is none: the resync after
 * a damaged record. Candidates are found by their magic and accepted only with a matching CRC.
 */
async function findNextFrame(fd: number, from: number, end: number): Promise<number> {
  const chunk = Buffer.allocUnsafe(SEARCH_CHUNK);
  let start = from;
  while (start < end) {
    const want = Math.min(SEARCH_CHUNK, end - start);
    const n = await readFully(fd, chunk, want, start);
    let rel = 0;
    for (;;) {
      const at = chunk.indexOf(MAGIC_BYTES, rel);
      if (at < 0 || at >= n) break;
      const verdict = checkFrame(chunk, at, n - at);
      if (verdict > 0) return start + at;
      if (verdict === INCOMPLETE && (await frameAt(fd, start + at, end)) > 0) return start + at;
      rel = at + 1;
    }
    if (start + n >= end || n < want) return end;
    start += n - 3; // a magic may straddle the chunk boundary
  }
  return end;
}

/** Size of an intact frame starting at `pos` (read on its own), or INVALID. */
async function frameAt(fd: number, pos: number, end: number): Promise<number> {
  const head = Buffer.allocUnsafe(HEADER_BYTES);
  if (end - pos < HEADER_BYTES || (await readFully(fd, head, HEADER_BYTES, pos)) < HEADER_BYTES)
    return INVALID;
  const len = head.readUInt32BE(8);
  if (len > MAX_RECORD_BYTES || pos + HEADER_BYTES + len > end) return INVALID;
  const whole = Buffer.allocUnsafe(HEADER_BYTES + len);
  if ((await readFully(fd, whole, whole.length, pos)) < whole.length) return INVALID;
  return checkFrame(whole, 0, whole.length);
}

/** What a visitor of walkFrames does with a frame. */
export const TAKE = 1;
export const TAKE_AND_STOP = 2;
export const STOP = 3;

export interface FrameVisitor {
  /** An intact frame at file `offset`; its payload is `buf[start, start + length)`. */
  frame(
    buf: Buffer,
    start: number,
    length: number,
    offset: number,
  ): typeof TAKE | typeof TAKE_AND_STOP | typeof STOP;
  /** End of a damaged region starting at `offset` that was already reported, if it is one. */
  knownDamage(offset: number): number | undefined;
  /** Bytes [from, to) hold no intact frame and were skipped (`to` is the next intact frame or the end). */
  damaged(from: number, to: number): void;
}

export interface WalkOptions {
  /** Bytes read at a time (more for a larger frame). */
  chunkBytes: number;
  /** Every read goes into a new buffer, so the visitor may keep subarrays of it. */
  fresh: boolean;
  /** Check each frame's CRC; without it only headers are checked (damage is still resynced by CRC). */
  verify: boolean;
}

/**
 * Walks the frames in [from, end) of a segment file and resyncs past damaged bytes. Returns the offset where
 * it stopped: after the last frame taken, or `end`.
 */
export async function walkFrames(
  fd: number,
  from: number,
  end: number,
  { chunkBytes, fresh, verify }: WalkOptions,
  visitor: FrameVisitor,
): Promise<number> {
  const chunk = Math.max(HEADER_BYTES, Math.min(chunkBytes, end - from));
  let size = chunk;
  let buf = Buffer.allocUnsafe(size);
  let pos = from;
  while (pos < end) {
    if (buf.length !== size || (fresh && pos !== from)) buf = Buffer.allocUnsafe(size);
    const want = Math.min(buf.length, end - pos);
    const n = await readFully(fd, buf, want, pos);
    if (n === 0) {
      // The file ends before `end` (cut short behind our back): the rest is gone.
      visitor.damaged(pos, end);
      return end;
    }
    const atEof = n < want || pos + n >= end;
    let rel = 0;
    while (rel < n) {
      const verdict = checkFrame(buf, rel, n - rel, verify);
      if (verdict > 0) {
        const action = visitor.frame(buf, rel + HEADER_BYTES, verdict - HEADER_BYTES, pos + rel);
        if (action === STOP) return pos + rel;
        rel += verdict;
        if (action === TAKE_AND_STOP) return pos + rel;
        continue;
      }
      if (verdict === INCOMPLETE && !atEof) break;
      const bad = pos + rel;
      const known = visitor.knownDamage(bad);
      const next = known ?? (await findNextFrame(fd, bad + 1, end));
      if (known === undefined) visitor.damaged(bad, next);
      rel = next - pos;
    }
    // A frame larger than the buffer: read it whole next time (checkFrame bounded its length).
    size = rel === 0 ? HEADER_BYTES + payloadLength(buf, 0) : chunk;
    pos += rel;
  }
  return end;
}
