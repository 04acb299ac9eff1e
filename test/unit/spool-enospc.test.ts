/**
 * Disk full, for real: the spool lives on a small tmpfs mounted for this test (needs root, as in CI), so
 * writes fail with the kernel's own ENOSPC, including short writes that leave part of a frame behind.
 */
import assert from 'node:assert/strict';
import { readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Spool, SpoolDiskFullError, type SpoolOptions } from '../../nodes/lib/spool';
import { tmpfs, type Tmpfs } from '../support/tmpfs';
import { spoolRecord } from '../support/spool-child';

function segmentBytesOnDisk(dir: string): number {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.seg'))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe('spool on a full disk', () => {
  let fs: Tmpfs;
  let mnt: string;

  before(() => {
    fs = tmpfs('spool-enospc', '1m');
    mnt = fs.path;
  });
  after(() => fs.remove());

  it('ENOSPC stops appends without damaging stored data, and appends resume when space returns', async () => {
    const dir = join(mnt, 'spool');
    const filler = join(mnt, 'filler');
    const spool = await Spool.open({
      dir,
      segmentBytes: 96 * 1024,
      maxBytes: 64 * 1024 * 1024,
      fsync: 'always',
    });
    try {
      const diskFull: SpoolDiskFullError[] = [];
      let recovered = 0;
      spool.on('diskFull', (e) => diskFull.push(e));
      spool.on('recovered', () => recovered++);

      // A filler file takes part of the space so that freeing it later gives room back.
      writeFileSync(filler, Buffer.alloc(256 * 1024));
      const stored: string[] = [];
      let next = 0;
      let failure: unknown;
      const batchAt = (first: number): Buffer[] => {
        const batch: Buffer[] = [];
        for (let k = 0; k < 181; k++) batch.push(spoolRecord(first + k));
        return batch;
      };
      // Batches of ~13 kB rarely end on a page boundary, so the failing write is typically a short one.
      while (!failure) {
        const batch = batchAt(next);
        try {
          await spool.append(batch);
          for (const r of batch) stored.push(r.toString());
          next += batch.length;
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(failure instanceof SpoolDiskFullError, (failure as Error).message);
      assert.equal(failure.code, 'ENOSPC');
      assert.match(failure.message, /disk full/);
      assert.equal(diskFull.length, 1);
      assert.equal(spool.stats().lastError, 'ENOSPC: disk full');
      assert.ok(stored.length > 1000, `${stored.length} records fit before the disk was full`);

      // No partial frame remains: the segment files hold exactly the frames of the stored records.
      const frameBytes = stored.reduce((n, r) => n + 12 + Buffer.byteLength(r), 0);
      assert.equal(segmentBytesOnDisk(dir), frameBytes);
      assert.equal(spool.stats().pendingBytes, frameBytes);

      // Still full: appends keep failing (and are not reported again), nothing changes on disk.
      await assert.rejects(spool.append(batchAt(next)), SpoolDiskFullError);
      assert.equal(diskFull.length, 1);
      assert.equal(segmentBytesOnDisk(dir), frameBytes);

      // Everything stored reads back intact while the disk is full, and acknowledging works (it frees space).
      const half = await spool.readBatch(Math.floor(stored.length / 2), 1 << 30);
      assert.deepEqual(
        half!.records.map((r) => r.toString()),
        stored.slice(0, half!.records.length),
      );
      await spool.ack(half!.end);
      const ackedCount = half!.records.length;

      // Space returns: the next append succeeds and the spool says so.
      unlinkSync(filler);
      await spool.append([spoolRecord(next)]);
      stored.push(spoolRecord(next).toString());
      assert.equal(recovered, 1);
      assert.equal(spool.stats().lastError, undefined);

      await spool.close();
      const reopened = await Spool.open({ dir });
      try {
        assert.equal(reopened.recovery.tornTailBytesTruncated, 0);
        assert.equal(reopened.recovery.corruptSkipped, 0);
        const rest: string[] = [];
        for (
          let b = await reopened.readBatch(1000, 1 << 20);
          b;
          b = await reopened.readBatch(1000, 1 << 20)
        ) {
          for (const r of b.records) rest.push(r.toString());
          await reopened.ack(b.end);
        }
        assert.deepEqual(rest, stored.slice(ackedCount));
      } finally {
        await reopened.close();
      }
    } finally {
      await spool.close();
    }
  });
});

/** Appends batches of `per` numbered records until the disk refuses one; returns how many were stored. */
async function fillUntilDiskFull(spool: Spool, first: number, per = 100): Promise<number> {
  let next = first;
  for (;;) {
    const batch: Buffer[] = [];
    for (let k = 0; k < per; k++) batch.push(spoolRecord(next + k));
    try {
      await spool.append(batch);
    } catch (err) {
      assert.ok(err instanceof SpoolDiskFullError, (err as Error).message);
      return next - first;
    }
    next += per;
  }
}

describe('spool on a small volume (2 MiB tmpfs): delivered data gives the space back', () => {
  let fs: Tmpfs;
  let mnt: string;
  const openOn = (dir: string, opts: Partial<SpoolOptions> = {}): Promise<Spool> =>
    Spool.open({ dir, fsync: 'always', ...opts });

  before(() => {
    fs = tmpfs('spool-small', '2m');
    mnt = fs.path;
  });
  after(() => fs.remove());

  it('with the default options segments are a sixteenth of the volume; delivering part of the backlog lets appends resume', async () => {
    const dir = join(mnt, 'spool-default');
    const spool = await openOn(dir);
    try {
      assert.equal(spool.segmentBytes, 128 * 1024, 'derived from the 2 MiB volume, not 64 MiB');
      let recovered = 0;
      spool.on('recovered', () => recovered++);
      const stored = await fillUntilDiskFull(spool, 0);
      assert.ok(stored > 10_000, `${stored} records fit`);
      assert.equal(spool.stats().diskFull, true);
      assert.ok(spool.volume()!.freeBytes < spool.segmentBytes);

      // The ack position is persisted on the full disk: acknowledge 100 records (no segment is freed by that),
      // close, reopen: it resumes right after them.
      const first = await spool.readBatch(100, 1 << 20);
      await spool.ack(first!.end);
      assert.ok(spool.volume()!.freeBytes < spool.segmentBytes, 'still full');
      await spool.close();
      const again = await openOn(dir);
      try {
        assert.equal(again.recovery.pendingRecords, stored - 100);
        const head = await again.readBatch(1, 1 << 20);
        assert.equal(head!.records[0].toString(), spoolRecord(100).toString());
        again.rewind();
        // Deliver a quarter: whole segments go, and appends work again without any other space returning.
        const quarter = await again.readBatch(Math.floor(stored / 4), 1 << 30);
        await again.ack(quarter!.end);
        assert.ok(again.volume()!.freeBytes > 256 * 1024);
        again.on('recovered', () => recovered++);
        await again.append([spoolRecord(stored)]);
        assert.equal(recovered, 0, 'the reopened spool had not seen the full disk itself');
        assert.equal(again.stats().diskFull, false);
        await fillUntilDiskFull(again, stored + 1);
        assert.equal(again.stats().diskFull, true);
        const more = await again.readBatch(5000, 1 << 30);
        await again.ack(more!.end);
        await again.append([spoolRecord(0)]);
        assert.equal(recovered, 1);
        assert.equal(again.stats().diskFull, false);
      } finally {
        await again.close();
      }
    } finally {
      await spool.close();
      rmSync(dir, { recursive: true });
    }
  });

  it('a segment larger than the volume is given back once everything in it is delivered', async () => {
    const dir = join(mnt, 'spool-large-segment');
    const spool = await openOn(dir, { segmentBytes: 64 * 1024 * 1024 });
    try {
      const stored = await fillUntilDiskFull(spool, 0);
      assert.equal(segmentBytesOnDisk(dir) > 1024 * 1024, true);
      assert.equal(
        readdirSync(dir).filter((f) => f.endsWith('.seg')).length,
        1,
        'all in the segment being written',
      );
      const all = await spool.readBatch(stored, 1 << 30);
      assert.equal(all!.records.length, stored);
      await spool.ack(all!.end);
      // The next append is queued behind the switch to a new segment, which deletes the delivered one.
      await spool.append([spoolRecord(stored)]);
      assert.equal(spool.stats().diskFull, false);
      assert.equal(segmentBytesOnDisk(dir), 12 + spoolRecord(stored).length);
      assert.ok(spool.volume()!.freeBytes > 1024 * 1024);
      const rest = await spool.readBatch(10, 1 << 20);
      assert.deepEqual(
        rest!.records.map((r) => r.toString()),
        [spoolRecord(stored).toString()],
      );
    } finally {
      await spool.close();
    }
  });
});
