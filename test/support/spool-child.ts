/**
 * A separate process for the spool tests (run with `node --import tsx`):
 *   hold <dir>          opens the spool, prints "ready", and keeps it open until killed
 *   append <dir> <n>    opens the spool (recovering it), numbers on from the records already in it, and appends
 *                       batches of <n> records forever, printing "acked <last number>" after each append resolves
 */
import { Spool } from '../../nodes/lib/spool';

/** Record number `i` as a line-protocol point; all records have the same length. */
export function spoolRecord(i: number): Buffer {
  const device = String(i % 17).padStart(2, '0');
  return Buffer.from(
    `telemetry,device=dev-${device},n=${String(i).padStart(9, '0')} value=21.5 ${1_700_000_000_000 + i}`,
  );
}

async function main(): Promise<void> {
  const [mode, dir, batchArg] = process.argv.slice(2);
  const spool = await Spool.open({ dir, segmentBytes: 256 * 1024, fsync: 'always' });
  if (mode === 'hold') {
    process.stdout.write('ready\n');
    setInterval(() => undefined, 60_000);
    return;
  }
  const batch = Number(batchArg);
  let next = spool.stats().pendingRecords;
  process.stdout.write(`start ${next}\n`);
  for (;;) {
    const records: Buffer[] = [];
    for (let k = 0; k < batch; k++) records.push(spoolRecord(next + k));
    await spool.append(records);
    next += batch;
    process.stdout.write(`acked ${next - 1}\n`);
  }
}

if (require.main === module) void main();
