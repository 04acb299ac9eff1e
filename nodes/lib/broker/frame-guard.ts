import { Duplex } from 'node:stream';

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
 * Sits between a connection and the MQTT parser and follows the packet framing: it reads each fixed
 * header's "remaining length" as it arrives and destroys the connection as soon as a packet declares more
 * than `maxPacketBytes`, before any of its body is buffered. (The parser would otherwise collect a 100 MB
 * declared packet in memory before looking at it.) Bodies are skipped by counting, so the cost per chunk
 * is one small loop per packet, not per byte.
 */
export class FrameGuard extends Duplex {
  private state = State.Header;
  private length = 0;
  private multiplier = 1;
  private lengthBytes = 0;
  private bodyLeft = 0;

  constructor(
    private readonly inner: Duplex,
    private readonly maxPacketBytes: number,
  ) {
    super({ allowHalfOpen: false });
    inner.on('data', (chunk: Buffer) => this.onData(chunk));
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
    inner.on('drain', () => this.emit('drain'));
  }

  private onData(chunk: Buffer): void {
    const err = this.scan(chunk);
    if (err) {
      this.inner.destroy();
      this.destroy(err);
      return;
    }
    if (!this.push(chunk)) this.inner.pause();
  }

  /** Advances the framing state over `chunk`; returns an error when a packet is too large or malformed. */
  private scan(chunk: Buffer): Error | undefined {
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

  override _read(): void {
    this.inner.resume();
  }

  /**
   * Writes go straight to the connection, corks included: mqtt-packet writes a packet as several small chunks
   * under cork (a PUBACK is three), and the socket sends every chunk corked in one tick (e.g. the PUBACKs of a
   * stored batch) with one writev. A second Writable in between would only queue and copy each chunk again.
   */
  override write(
    chunk: unknown,
    encoding?: BufferEncoding | ((err?: Error | null) => void),
    cb?: (err?: Error | null) => void,
  ): boolean {
    if (typeof encoding === 'function') return this.inner.write(chunk, encoding);
    if (encoding === undefined) return this.inner.write(chunk, cb);
    return this.inner.write(chunk, encoding, cb);
  }

  override cork(): void {
    this.inner.cork();
  }

  override uncork(): void {
    this.inner.uncork();
  }

  /** Only reached through `end(chunk)`: every other write goes straight to the connection. */
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.inner.write(chunk, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy();
    cb(err);
  }
}
