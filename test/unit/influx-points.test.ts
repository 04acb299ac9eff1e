import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeLine, LineProtocolError } from '../../nodes/lib/influx/line-protocol';
import {
  AcceptanceClock,
  DEFAULT_POINT_DEFAULTS,
  encodeMessage,
  pointsFromMessage,
} from '../../nodes/lib/influx/points';

const NOW = 1_700_000_000_000;
const lines = (msg: Parameters<typeof pointsFromMessage>[0]): string[] =>
  pointsFromMessage(msg, DEFAULT_POINT_DEFAULTS, new AcceptanceClock(() => NOW)).map((p) => encodeLine(p));

describe('readings and points to line protocol', () => {
  it('maps a pipeline reading: device tags, one field per value, quality siblings, fixed timestamp', () => {
    assert.deepEqual(
      lines({
        device: { id: 'd1', type: 'thermo' },
        payload: { temperature: 21.5, door: true, label: 'kitchen', missing: null, ts: 5, id: 'm1' },
        timestamp: 1_700_000_000_123,
        quality: { temperature: { flag: 'imputed', method: 'hold', raw: 999 } },
      }),
      [
        'telemetry,device=d1,type=thermo door=true,label="kitchen",temperature=21.5,temperature_flag="imputed",temperature_raw=999 1700000000123000000',
      ],
    );
  });

  it('keeps the flag of a field iotb-quality removed from the payload', () => {
    assert.deepEqual(
      lines({
        device: { id: 'd1' },
        payload: { humidity: 40 },
        timestamp: 1000,
        quality: { temperature: { flag: 'missing', raw: null, reason: 'no value' } },
      }),
      ['telemetry,device=d1 humidity=40,temperature_flag="missing" 1000000000'],
    );
  });

  it('fixes the acceptance time for a reading without one', () => {
    assert.deepEqual(lines({ device: { id: 'd1' }, payload: { v: 1 } }), [
      `telemetry,device=d1 v=1 ${NOW}000000`,
    ]);
  });

  it('gives readings accepted in the same millisecond distinct times', () => {
    const clock = new AcceptanceClock(() => NOW);
    const t = [1, 2, 3].map(
      () => pointsFromMessage({ payload: { v: 1 } }, DEFAULT_POINT_DEFAULTS, clock)[0].timeNs,
    );
    assert.deepEqual(t, [`${NOW}000000`, `${NOW}000001`, `${NOW}000002`]);
  });

  it('gives every point without a time its own, also within one message', () => {
    const clock = new AcceptanceClock(() => NOW);
    const point = { measurement: 'device_events', tags: { device: 'd1', code: 'SCHEMA' }, fields: { n: 1 } };
    const times = [
      ...pointsFromMessage({ payload: [point, point] }, DEFAULT_POINT_DEFAULTS, clock),
      ...pointsFromMessage(
        { device: { id: 'd1' }, payload: [{ v: 1 }, { v: 2 }] },
        DEFAULT_POINT_DEFAULTS,
        clock,
      ),
      ...pointsFromMessage({ payload: point }, DEFAULT_POINT_DEFAULTS, clock),
    ].map((p) => p.timeNs);
    assert.deepEqual(
      times,
      [0, 1, 2, 3, 4].map((i) => `${NOW}00000${i}`),
    );
  });

  it('takes each reading of a batch at its own time with its own quality (parallel arrays)', () => {
    assert.deepEqual(
      lines({
        device: { id: 'd3' },
        payload: [{ t: 1 }, { t: 2 }],
        timestamp: [1000, 2000],
        messageId: ['a', 'b'],
        quality: [null, { t: { flag: 'suspect', raw: 2 } }],
      } as Parameters<typeof pointsFromMessage>[0]),
      ['telemetry,device=d3 t=1 1000000000', 'telemetry,device=d3 t=2,t_flag="suspect",t_raw=2 2000000000'],
    );
  });

  it('takes explicit points and arrays of points or readings', () => {
    assert.deepEqual(
      lines({
        device: { id: 'd2' },
        timestamp: 7,
        payload: [
          { measurement: 'commands', tags: { device: 'd2' }, fields: { state: 'SENT' }, timestamp: 1000 },
          { v: 1, ts: 2000 },
          { v: 2 },
        ],
      }),
      [
        'commands,device=d2 state="SENT" 1000000000',
        'telemetry,device=d2 v=1 2000000000',
        'telemetry,device=d2 v=2 7000000',
      ],
    );
  });

  it('refuses what is neither, with a reason', () => {
    for (const payload of ['text', 42, null, [1], { nested: { a: 1 } }]) {
      assert.throws(
        () => pointsFromMessage({ payload }, DEFAULT_POINT_DEFAULTS, new AcceptanceClock()),
        (e: unknown) => e instanceof LineProtocolError && e.message.length > 10,
        JSON.stringify(payload),
      );
    }
  });

  it('encodes a batch of many devices element by element: own tags, time and flags; a bad element alone', () => {
    const encoded = encodeMessage(
      {
        device: [
          { id: 'a', type: 'thermo' },
          { id: 'b', type: 'meter' },
          { id: 'c' },
          { id: 'a', type: 'thermo' },
        ],
        payload: [{ t: 1 }, { kwh: 2 }, { nested: { x: 1 } }, { t: 3 }],
        timestamp: [1000, 2000, 3000, 4000],
        quality: [null, { kwh: { flag: 'suspect' } }, null, null],
      },
      DEFAULT_POINT_DEFAULTS,
      new AcceptanceClock(() => NOW),
      (p) => encodeLine(p),
    );
    assert.deepEqual(
      encoded.lines.map((b) => b.toString()),
      [
        'telemetry,device=a,type=thermo t=1 1000000000',
        'telemetry,device=b,type=meter kwh=2,kwh_flag="suspect" 2000000000',
        'telemetry,device=a,type=thermo t=3 4000000000',
      ],
    );
    assert.deepEqual(encoded.kept, [0, 1, 3]);
    assert.equal(encoded.refused.length, 1);
    assert.deepEqual([encoded.refused[0].index, encoded.refused[0].code], [2, 'BAD_FIELD']);
  });

  it('encodes a message of one reading, or refuses it without an index', () => {
    const clock = new AcceptanceClock(() => NOW);
    const ok = encodeMessage({ payload: { v: 1 }, timestamp: 5 }, DEFAULT_POINT_DEFAULTS, clock, encodeLine);
    assert.deepEqual([ok.lines.length, ok.kept, ok.refused], [1, undefined, []]);
    const bad = encodeMessage({ payload: 'text' }, DEFAULT_POINT_DEFAULTS, clock, encodeLine);
    assert.deepEqual(
      [bad.lines.length, bad.refused[0].index, bad.refused[0].code],
      [0, undefined, 'BAD_INPUT'],
    );
  });
});
