import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { FrameGuard, PacketTooLargeError } from '../../nodes/lib/broker/frame-guard';

/** A connection that records every write it gets (a writev, as a socket does one, as one write). */
function connection(): { inner: Duplex; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const inner = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk);
      cb();
    },
    writev(chunks: { chunk: Buffer }[], cb) {
      writes.push(Buffer.concat(chunks.map((c) => c.chunk)));
      cb();
    },
  });
  return { inner, writes };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('FrameGuard', () => {
  it('hands packets written under cork to the connection in one write', async () => {
    const { inner, writes } = connection();
    const guard = new FrameGuard(inner, 1024);
    // Two PUBACKs as mqtt-packet writes them: type, remaining length, message id, each a write of its own.
    guard.cork();
    for (const id of [7, 8]) {
      guard.write(Buffer.from([0x40]));
      guard.write(Buffer.from([0x02]));
      guard.write(Buffer.from([0x00, id]));
    }
    process.nextTick(() => guard.uncork());
    await tick();
    assert.deepEqual(writes, [Buffer.from([0x40, 0x02, 0x00, 7, 0x40, 0x02, 0x00, 8])]);
    guard.write(Buffer.from([0xc0, 0x00]));
    await tick();
    assert.equal(writes.length, 2, 'an uncorked write goes on as it is');
  });

  it('refuses a packet that declares more than the limit before its body arrives', async () => {
    const { inner } = connection();
    const guard = new FrameGuard(inner, 100);
    const failed = new Promise<Error>((resolve) => guard.on('error', resolve));
    inner.push(Buffer.from([0x30, 0xe8, 0x07])); // PUBLISH, remaining length 1,000
    const err = await failed;
    assert.ok(err instanceof PacketTooLargeError);
    assert.equal(err.declaredBytes, 1003);
  });
});
