import type { Duplex } from 'node:stream';

/** Raised (as the stream's error) when a peer declares an MQTT packet larger than allowed. */
export class PacketTooLargeError extends Error {
  constructor(
    readonly declaredBytes: number,
    readonly maxBytes: number,
  ) {
    super(`MQTT packet of ${declaredBytes} bytes exceeds the limit of ${maxBytes} bytes`);
    this.name = 'PacketTooLargeError';
  }
}

const enum State {
  Header,
  Length,
  Body,
}

/**
 * Follows the MQTT packet framing of a connection's bytes: it reads each fixed header's "remaining length" as
 * it arrives and reports a packet that declares more than `maxPacketBytes` before any of its body reaches the
 * parser. (The parser would otherwise collect a 100 MB declared packet in memory before looking at it.)
 * Bodies are skipped by counting, so the cost per chunk is one small loop per packet, not per byte.
 */
export class FrameScanner {
  private state = State.Header;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(private readonly maxPacketBytes: number) {}

  /** Advances the framing state over `chunk`; returns an error when a packet is too large or malformed. */
  scan(chunk: Uint8Array): Error | undefined {
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      switch (this.state) {
        case State.Header:
          i++;
          this.state = State.Length;
          this.length = 0;
          this.multiplier = 1;
          this.lengthBytes = 0;
          break;
        case State.Length: {
          const b = chunk[i++];
          this.length += (b & 0x7f) * this.multiplier;
          this.multiplier *= 128;
          this.lengthBytes++;
          if (b & 0x80) {
            if (this.lengthBytes === 4)
              return new Error('malformed MQTT remaining length (more than 4 bytes)');
            break;
          }
          const total = 1 + this.lengthBytes + this.length;
          if (total > this.maxPacketBytes) return new PacketTooLargeError(total, this.maxPacketBytes);
          this.bodyLeft = this.length;
          this.state = this.bodyLeft === 0 ? State.Header : State.Body;
          break;
        }
        case State.Body: {
          const take = Math.min(this.bodyLeft, n - i);
          i += take;
          this.bodyLeft -= take;
          if (this.bodyLeft === 0) this.state = State.Header;
          break;
        }
      }
    }
    return undefined;
  }
}

/**
 * Puts the frame check on a connection that aedes reads (aedes calls `read()` on each 'readable'): every chunk
 * read is scanned before the parser gets it, and a packet declaring more than `maxPacketBytes` destroys the
 * connection with a PacketTooLargeError instead. The socket itself stays aedes' connection, with no stream in
 * between: what is read waits in the socket's own bounded buffer, as before, and writes go straight out.
 */
export function guardFrames(conn: Duplex, maxPacketBytes: number): void {
  const scanner = new FrameScanner(maxPacketBytes);
  const read = conn.read.bind(conn);
  conn.read = (size?: number): Buffer | string | null => {
    const chunk = read(size) as Buffer | string | null;
    if (chunk === null || typeof chunk === 'string') return chunk;
    const err = scanner.scan(chunk);
    if (!err) return chunk;
    conn.destroy(err);
    return null;
  };
}
