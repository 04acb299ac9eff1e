/**
 * A reading the writer could not make durable (spool full: its acknowledgement failed) comes again from the
 * device. iotb-validate must pass the re-send on — at the time of the first copy — so that it is stored and
 * only then acknowledged, instead of refusing it as a duplicate of a reading that was never stored.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { WriterHealthHolder } from '../../nodes/lib/health';
import { ackLedger, type AckOutcome } from '../../nodes/lib/ingest/ack-ledger';
import { helper, nodeModule, received } from '../support/helper';
import { eventually, influxRows, startInfluxd, tempDir, type Server } from '../support/servers';

const nodes = [nodeModule('influx'), nodeModule('influx-write'), nodeModule('validate')];

describe('iotb-validate → iotb-influx-write: a reading re-sent after the spool refused it', () => {
  const userDir = tempDir('validate-redelivery');
  let influx: Server;
  before(async () => {
    influx = await startInfluxd({ database: 'iot' });
    helper.settings({ userDir: userDir.path });
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await influx?.stop();
    userDir.remove();
  });
  afterEach(() => helper.unload());

  it('is stored at the first copy’s time and acknowledged only once stored, with ts or with an id alone; dropped once stored', async () => {
    await influx.pause(); // nothing drains the spool: it fills up and refuses
    await helper.load(nodes, [
      { id: 'cfg', type: 'iotb-influx', flavour: '1', url: influx.url, database: 'iot', timeoutS: 2 },
      {
        id: 'v',
        type: 'iotb-validate',
        schemaSource: 'inline',
        schema: JSON.stringify({ type: 'object', properties: { v: { type: 'number' } }, required: ['v'] }),
        wires: [['w'], ['refused']],
      },
      {
        id: 'w',
        type: 'iotb-influx-write',
        influx: 'cfg',
        measurement: 'redelivery',
        confirm: true,
        flushIntervalMs: 50,
        closeTimeoutS: 0.5,
        spoolMaxMB: 0.0625,
        whenFull: 'refuse',
        wires: [['stored'], ['notStored'], []],
      },
      { id: 'refused', type: 'helper' },
      { id: 'stored', type: 'helper' },
      { id: 'notStored', type: 'helper' },
    ]);
    const v = helper.getNode('v');
    const w = helper.getNode('w');
    const refused = received(helper.getNode('refused'));
    const stored = received(helper.getNode('stored'));
    const notStored = received(helper.getNode('notStored'));
    // The ledger tells the owner how each acknowledgement ended, as it tells the broker.
    const outcomes = new Map<number, (outcome: AckOutcome) => void>();
    const owner = { settled: (id: number, outcome: AckOutcome) => outcomes.get(id)?.(outcome) };
    const settledAcks = new Map<number, Promise<AckOutcome>>();
    const settled = (id: number): Promise<AckOutcome> => settledAcks.get(id)!;

    // Fill the spool with another device's readings until it refuses.
    for (let i = 0; i < 3000; i++)
      w.receive({ device: { id: 'filler' }, payload: { f: i }, timestamp: 1e12 + i });
    await notStored.next((m) => m.rejection?.code === 'SPOOL_FULL');

    const device = { id: 'redo', type: 'meter' };
    const ts = Date.now() - 60_000;
    const readings = [`{"ts":${ts},"v":1.5}`, '{"id":"r-2","v":2.5}'];
    /** Sends a reading as the embedded broker does: with a held acknowledgement. */
    const publish = (payload: string): number => {
      const ackId = ackLedger.hold(owner, 60_000);
      settledAcks.set(ackId, new Promise((resolve) => outcomes.set(ackId, resolve)));
      v.receive({ device, payload, ackId });
      return ackId;
    };
    const first = readings.map(publish);
    assert.deepEqual(await Promise.all(first.map(settled)), ['failed', 'failed'], 'not durable: no PUBACK');
    const firstCopies = await Promise.all(first.map((id) => notStored.next((m) => m.ackId === id)));
    assert.deepEqual(
      firstCopies.map((m): unknown => m.rejection.code),
      ['SPOOL_FULL', 'SPOOL_FULL'],
    );
    const firstTimes = firstCopies.map((m) => m.timestamp as number);
    assert.equal(firstTimes[0], ts);

    // InfluxDB returns, the spool drains and takes readings again; the device sends both readings again.
    await influx.start();
    const holder = w as unknown as WriterHealthHolder;
    await eventually('the spool takes readings again', () =>
      Promise.resolve(holder.writerSnapshot?.()?.spool?.full === false ? true : undefined),
    );
    const again = readings.map(publish);
    const storedCopies = await Promise.race([
      Promise.all(again.map((id) => stored.next((m) => m.ackId === id))),
      refused.next().then((m): never => {
        throw new Error(`the re-send was refused: ${JSON.stringify(m.rejection)}`);
      }),
    ]);
    assert.deepEqual(
      storedCopies.map((m): unknown[] => [m.messageId, m.timestamp]),
      [
        [`redo:${ts}`, ts],
        ['r-2', firstTimes[1]],
      ],
      'written at the times the first copies got',
    );
    assert.deepEqual(await Promise.all(again.map(settled)), ['stored', 'stored']);
    assert.equal(refused.msgs.length, 0);

    const rows = await eventually('both readings in InfluxDB', async () => {
      const got = await influxRows(influx.url, 'iot', `SELECT v FROM redelivery WHERE device = 'redo'`, 'ms');
      return got.length >= 2 ? got : undefined;
    });
    assert.deepEqual(
      rows.map((r) => r.v),
      [1.5, 2.5],
    );
    assert.equal(rows[0].time, ts);
    // Now that it is stored, one more copy is dropped with a reason (its refusal is what acknowledges it).
    publish(readings[0]);
    const dropped = await refused.next();
    assert.equal(dropped.rejection.code, 'DUPLICATE');
    assert.match(dropped.rejection.reason, /already stored/);
  });
});
