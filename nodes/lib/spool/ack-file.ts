import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';
import { requireCrc32 } from './frame';

/** The acknowledged position: segment, byte offset, and how many records of the segment lie before it (if known). */
export interface AckPosition {
  segment: number;
  offset: number;
  records?: number;
}

export const ACK_FILE = 'ack.pos';
/** Written by earlier versions (replaced through a temp file); read once and then replaced by ACK_FILE. */
const LEGACY_ACK_FILE = 'ack.json';

/** Each slot sits in its own 512-byte sector, so a torn sector write can damage only the slot being written. */
const SLOT_BYTES = 512;
const FILE_BYTES = 2 * SLOT_BYTES;
const MAGIC = 0x4941434b; // "IACK"
/** magic u32 | crc32 u32 (of the rest) | generation f64 | segment f64 | offset f64 | records f64 (-1: unknown) */
const BODY_BYTES = 40;

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

function decodeSlot(buf: Buffer, at: number): { generation: number; pos: AckPosition } | undefined {
  if (buf.readUInt32BE(at) !== MAGIC) return undefined;
  if (requireCrc32()(buf.subarray(at + 8, at + BODY_BYTES)) !== buf.readUInt32BE(at + 4)) return undefined;
  const [generation, segment, offset, records] = [8, 16, 24, 32].map((o) => buf.readDoubleBE(at + o));
  if (![generation, segment, offset].every(Number.isSafeInteger)) return undefined;
  const pos: AckPosition = { segment, offset };
  if (Number.isSafeInteger(records) && records >= 0) pos.records = records;
  return { generation, pos };
}

export type AckRead = { pos: AckPosition } | { unreadable: string } | undefined;

/**
 * The ack position on disk, in a file of fixed size that is overwritten in place: once created it never needs a
 * new block, so a full disk cannot stop the position from being persisted (a file replaced through a temp file
 * needs space for the copy). Two slots, each with a generation number and a CRC; a write goes to the slot that
 * does not hold the newest position and is followed by fdatasync. A write torn by a crash or power loss leaves
 * the other slot intact: the reader takes the valid slot with the highest generation, at worst the previous
 * position, so records after it are delivered again (at-least-once) and none are skipped.
 */
export class AckFile {
  private fd = -1;
  private generation = 0;
  private readonly buf = Buffer.alloc(BODY_BYTES);

  constructor(private readonly dir: string) {}

  /** The file exists and is open for rewriting in place. */
  get created(): boolean {
    return this.fd >= 0;
  }

  /** The persisted position; undefined when there is none yet (a new spool). */
  read(): AckRead {
    const file = join(this.dir, ACK_FILE);
    let fd: number;
    try {
      fd = openSync(file, 'r+');
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      return this.readLegacy();
    }
    const buf = Buffer.alloc(FILE_BYTES);
    const size = fstatSync(fd).size;
    const n = readSync(fd, buf, 0, FILE_BYTES, 0);
    if (size !== FILE_BYTES || n !== FILE_BYTES) {
      // Not made by this code (the file is created whole, by rename): replaced on the next write.
      closeSync(fd);
      return { unreadable: `${ACK_FILE} has ${size} bytes instead of ${FILE_BYTES}` };
    }
    this.fd = fd;
    const slots = [decodeSlot(buf, 0), decodeSlot(buf, SLOT_BYTES)].filter((s) => s !== undefined);
    if (slots.length === 0) return { unreadable: `${ACK_FILE} holds no valid position` };
    const newest = slots.reduce((a, b) => (b.generation > a.generation ? b : a));
    this.generation = newest.generation;
    return { pos: newest.pos };
  }

  /** Persists `pos` (in place once the file exists). Throws when the disk refuses (the caller retries later). */
  write(pos: AckPosition): void {
    const generation = this.generation + 1;
    const b = this.buf;
    b.writeUInt32BE(MAGIC, 0);
    b.writeDoubleBE(generation, 8);
    b.writeDoubleBE(pos.segment, 16);
    b.writeDoubleBE(pos.offset, 24);
    b.writeDoubleBE(pos.records ?? -1, 32);
    b.writeUInt32BE(requireCrc32()(b.subarray(8, BODY_BYTES)), 4);
    if (this.fd < 0) {
      this.create(b);
    } else {
      writeSync(this.fd, b, 0, BODY_BYTES, (generation % 2) * SLOT_BYTES);
      fdatasyncSync(this.fd);
    }
    this.generation = generation;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  /** Creates the file whole (temp file and rename) with `slot` as the newest position; drops the legacy file. */
  private create(slot: Buffer): void {
    const file = join(this.dir, ACK_FILE);
    const whole = Buffer.alloc(FILE_BYTES);
    slot.copy(whole, ((this.generation + 1) % 2) * SLOT_BYTES);
    writeFileAtomicSync(file, whole);
    this.fd = openSync(file, 'r+');
    try {
      unlinkSync(join(this.dir, LEGACY_ACK_FILE));
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }

  private readLegacy(): AckRead {
    let text: string;
    try {
      text = readFileSync(join(this.dir, LEGACY_ACK_FILE), 'utf8');
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const v = JSON.parse(text) as { segment?: unknown; offset?: unknown; records?: unknown };
      if (Number.isSafeInteger(v.segment) && Number.isSafeInteger(v.offset)) {
        const pos: AckPosition = { segment: v.segment as number, offset: v.offset as number };
        if (Number.isSafeInteger(v.records)) pos.records = v.records as number;
        return { pos };
      }
    } catch {
      // fall through
    }
    return { unreadable: `unreadable ${LEGACY_ACK_FILE}` };
  }
}
