import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { guardFrames, PacketTooLargeError } from '../../nodes/lib/broker/frame-guard';

/** A connection under guardFrames, read the way aedes reads it (`read()` on each 'readable'). */
function guarded(maxPacketBytes: number): { conn: Duplex; received: Buffer[]; failed: Promise<Error> } {
  const conn = new Duplex({ read() {}, write: (_chunk, _enc, cb) => cb() });
  guardFrames(conn, maxPacketBytes);
  const received: Buffer[] = [];
  conn.on('readable', () => {
    let chunk: Buffer | null;
    while ((chunk = conn.read() as Buffer | null) !== null) received.push(chunk);
  });
  const failed = new Promise<Error>((resolve) => conn.on('error', resolve));
  return { conn, received, failed };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('guardFrames', () => {
  it('hands packets within the limit to the reader unchanged, across chunk boundaries', async () => {
    const { conn, received } = guarded(100);
    const publish = Buffer.from([0x30, 0x05, 0x00, 0x01, 0x74, 0x68, 0x69]); // topic "t", payload "hi"
    conn.push(publish.subarray(0, 2));
    await tick();
    conn.push(Buffer.concat([publish.subarray(2), Buffer.from([0xc0, 0x00])])); // ... and a PINGREQ
    await tick();
    assert.deepEqual(Buffer.concat(received), Buffer.concat([publish, Buffer.from([0xc0, 0x00])]));
    assert.equal(conn.destroyed, false);
  });

  it('refuses a packet that declares more than the limit before its body arrives', async () => {
    const { conn, received, failed } = guarded(100);
    conn.push(Buffer.from([0x30, 0xe8, 0x07])); // PUBLISH, remaining length 1,000
    const err = await failed;
    assert.ok(err instanceof PacketTooLargeError);
    assert.equal(err.declaredBytes, 1003);
    assert.deepEqual(received, [], 'nothing of it reached the reader');
    assert.equal(conn.destroyed, true);
  });

  it('refuses a remaining length of more than four bytes', async () => {
    const { conn, failed } = guarded(1 << 30);
    conn.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff]));
    assert.match((await failed).message, /malformed MQTT remaining length/);
  });
});
