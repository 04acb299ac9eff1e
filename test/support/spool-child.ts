/**
 * A separate process for the spool tests (run with `node --import tsx`):
 *   hold <dir>          opens the spool, prints "ready", and keeps it open until killed
 *   append <dir> <n> [fsync]  opens the spool (recovering it), numbers on from the records already in it, and
 *                       appends batches of <n> records forever, printing "acked <last number>" after each
 *                       append resolves (fsync policy default 'always')
 *   deliver <dir> <n> <fsync>  appends records 0..999, reads and acknowledges the first <n> (an interval
 *                       policy waits a minute between syncs), prints "delivered <n>" and keeps running
 */
import { Spool, type FsyncPolicy } from '../../nodes/lib/spool';

/** Record number `i` as a line-protocol point; all records have the same length. */
export function spoolRecord(i: number): Buffer {
  const device = String(i % 17).padStart(2, '0');
  return Buffer.from(
    `telemetry,device=dev-${device},n=${String(i).padStart(9, '0')} value=21.5 ${1_700_000_000_000 + i}`,
  );
}

async function main(): Promise<void> {
  const [mode, dir, batchArg, fsync = 'always'] = process.argv.slice(2);
  const spool = await Spool.open({
    dir,
    segmentBytes: 16 * 1024,
    fsync: fsync as FsyncPolicy,
    fsyncIntervalMs: mode === 'deliver' ? 60_000 : 1000,
  });
  if (mode === 'hold') {
    process.stdout.write('ready\n');
    setInterval(() => undefined, 60_000);
    return;
  }
  if (mode === 'deliver') {
    const records: Buffer[] = [];
    for (let i = 0; i < 1000; i++) records.push(spoolRecord(i));
    await spool.append(records);
    let delivered = 0;
    while (delivered < Number(batchArg)) {
      const b = await spool.readBatch(Math.min(100, Number(batchArg) - delivered), 1 << 20);
      await spool.ack(b!.end);
      delivered += b!.records.length;
    }
    process.stdout.write(`delivered ${delivered}\n`);
    setInterval(() => undefined, 60_000);
    return;
  }
  const batch = Number(batchArg);
  let next = spool.stats().pendingRecords;
  process.stdout.write(`start ${next} torn ${spool.recovery.tornTailBytesTruncated}\n`);
  for (;;) {
    const records: Buffer[] = [];
    for (let k = 0; k < batch; k++) records.push(spoolRecord(next + k));
    await spool.append(records);
    next += batch;
    process.stdout.write(`acked ${next - 1}\n`);
  }
}

if (require.main === module) void main();
