import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckLedger, type AckOutcome } from '../../nodes/lib/ingest/ack-ledger';
import {
  compileReadingSchema,
  DuplicateWindow,
  validateMicroBatch,
  type SchemaLookup,
  type ValidateContext,
} from '../../nodes/lib/validate';

const now = Date.parse('2026-06-01T12:00:00Z');
const schemas = {
  thermo: compileReadingSchema({
    type: 'object',
    properties: { temperature: { type: 'number', maximum: 150 } },
    required: ['temperature'],
  }),
  meter: compileReadingSchema({ type: 'object', properties: { kwh: { type: 'number', minimum: 0 } } }),
};
const lookup: SchemaLookup = (device) =>
  schemas[device?.type as keyof typeof schemas] ?? {
    code: 'NO_SCHEMA',
    reason: `no schema for ${device?.type}`,
  };

const ctx = (): ValidateContext => ({
  schema: undefined,
  now,
  count: false,
  duplicates: new DuplicateWindow(10, 10),
});

/** A real ledger without its timer, and what its owner was told. */
function ledger(): { ledger: AckLedger; outcomes: [number, AckOutcome][]; hold(): number } {
  const l = new AckLedger(() => 0, 0);
  const outcomes: [number, AckOutcome][] = [];
  const owner = { settled: (id: number, o: AckOutcome) => outcomes.push([id, o]) };
  return { ledger: l, outcomes, hold: () => l.hold(owner, 1000) };
}

describe('validateMicroBatch', () => {
  it('judges each publication against its own device type and keeps the output arrays parallel', () => {
    const l = ledger();
    const ids = [l.hold(), null, l.hold()];
    const t = { id: 't', type: 'thermo' };
    const m = { id: 'm', type: 'meter' };
    const v = validateMicroBatch(
      ['{"temperature":1}', '{"kwh":5}', '{"temperature":5}'],
      [t, m, m],
      ids,
      ctx(),
      lookup,
      l.ledger,
    );
    assert.deepEqual(v.valid.payload, [{ temperature: 1 }, { kwh: 5 }, { temperature: 5 }]);
    assert.deepEqual(v.valid.device, [t, m, m]);
    assert.equal(v.valid.device[1], m, 'the device reference is shared, not copied');
    assert.deepEqual(v.valid.ackId, ids);
    assert.deepEqual(v.valid.timestamp, [now, now, now]);
    assert.deepEqual(v.refused, []);
  });

  it('refuses an unknown type, a bad reading and an unparsable publication alone, with its index', () => {
    const l = ledger();
    const ids = [l.hold(), l.hold(), l.hold()];
    const v = validateMicroBatch(
      ['{"a":1}', '[{"kwh":1},{"kwh":-1}]', '{'],
      [
        { id: 'x', type: 'toaster' },
        { id: 'm', type: 'meter' },
        { id: 't', type: 'thermo' },
      ],
      ids,
      ctx(),
      lookup,
      l.ledger,
    );
    assert.deepEqual(v.valid.payload, [{ kwh: 1 }]);
    assert.deepEqual(
      v.refused.map((r) => [r.rejection.code, r.rejection.details, r.device?.id, r.ackId, r.payload]),
      [
        ['NO_SCHEMA', { index: 0 }, 'x', ids[0], '{"a":1}'],
        ['SCHEMA', v.refused[1].rejection.details, 'm', ids[1], { kwh: -1 }],
        ['PARSE', v.refused[2].rejection.details, 't', ids[2], '{'],
      ],
    );
    assert.deepEqual(
      [(v.refused[1].rejection.details as any).index, (v.refused[1].rejection.details as any).reading],
      [1, 1],
    );
    assert.equal((v.refused[2].rejection.details as any).index, 2);
    // Publication 1 became two parts (one reading, one refusal): one extra reference.
    l.ledger.settle(v.valid.ackId, 'stored');
    assert.equal(l.outcomes.length, 0, 'publication 1 still waits for its refusal');
    for (const r of v.refused) l.ledger.settle(r.ackId, 'stored');
    assert.deepEqual(
      l.outcomes.map(([id]) => id),
      [ids[0], ids[1], ids[2]],
    );
  });

  it('applies the duplicate window per device across the publications of a batch', () => {
    const l = ledger();
    const v = validateMicroBatch(
      ['{"id":"r1","temperature":1}', '{"id":"r1","temperature":1}', '{"id":"r1","temperature":2}'],
      [
        { id: 'a', type: 'thermo' },
        { id: 'b', type: 'thermo' },
        { id: 'a', type: 'thermo' },
      ],
      [null, null, null],
      ctx(),
      lookup,
      l.ledger,
    );
    assert.deepEqual(v.valid.messageId, ['r1', 'r1']);
    assert.deepEqual(
      v.valid.device.map((d) => d?.id),
      ['a', 'b'],
    );
    assert.equal(v.refused[0].rejection.code, 'DUPLICATE_ID');
    assert.equal((v.refused[0].rejection.details as any).index, 2);
  });

  it('asks the ledger about the ack id of each publication: a re-send is dropped only when its first copy was stored', () => {
    const l = ledger();
    const c = { ...ctx(), acks: l.ledger };
    const a = { id: 'a', type: 'thermo' };
    const b = { id: 'b', type: 'thermo' };
    const reading = `{"ts":${now - 10},"temperature":1}`;
    const first = [l.hold(), l.hold()];
    const v1 = validateMicroBatch([reading, reading], [a, b], first, c, lookup, l.ledger);
    assert.equal(v1.valid.payload.length, 2);
    // a's copy reached the spool, b's was refused (spool full): both devices send it again.
    l.ledger.settle(first[0], 'stored');
    l.ledger.settle(first[1], 'failed');
    const again = [l.hold(), l.hold()];
    const v2 = validateMicroBatch([reading, reading], [a, b], again, c, lookup, l.ledger);
    assert.deepEqual(
      v2.refused.map((r) => [r.device?.id, r.ackId, r.rejection.code]),
      [['a', again[0], 'DUPLICATE']],
    );
    assert.deepEqual(
      [v2.valid.device.map((d) => d?.id), v2.valid.ackId, v2.valid.timestamp],
      [['b'], [again[1]], [now - 10]],
    );
  });
});
