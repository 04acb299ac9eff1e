/**
 * The line-protocol encoder against a real influxd 1.x: generated names and string values built from the
 * characters line protocol treats specially are either stored byte-exact or refused with a reason — never
 * stored altered, never turned into another tag, field or line.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { encodeLine, LineProtocolError, type PointInput } from '../../nodes/lib/influx/line-protocol';
import { influxRows, startInfluxd, type Server } from '../support/servers';

const PIECES = [
  '\\',
  '"',
  "'",
  ',',
  '=',
  ' ',
  'a',
  '\\\\',
  '\\"',
  '\\,',
  '\\=',
  '\\ ',
  '\\n',
  '\n',
  '\t',
  'é',
  '😀',
  '\ud800',
  '#',
  '_',
];

/** Every pair of pieces, inside a word, at its end and alone: the places escaping rules differ. */
function generated(): string[] {
  const out = new Set<string>();
  for (const a of PIECES)
    for (const b of PIECES) for (const s of [`x${a}${b}y`, `${a}${b}`, `x${a}${b}`]) out.add(s);
  return [...out];
}

type Place = 'measurement' | 'tagKey' | 'tagValue' | 'fieldKey' | 'stringValue';

function pointFor(place: Place, s: string, i: number): PointInput {
  const timeNs = String(1_000_000 + i);
  const k = `${place}-${i}`;
  switch (place) {
    case 'measurement':
      return { measurement: s, tags: { k }, fields: { v: 1 }, timeNs };
    case 'tagKey':
      return { measurement: 'tagKey', tags: { k, [s]: 'x' }, fields: { v: 1 }, timeNs };
    case 'tagValue':
      return { measurement: 'tagValue', tags: { k, t: s }, fields: { v: 1 }, timeNs };
    case 'fieldKey':
      return { measurement: 'fieldKey', tags: { k }, fields: { [s]: 1 }, timeNs };
    case 'stringValue':
      return { measurement: 'stringValue', tags: { k }, fields: { s }, timeNs };
  }
}

describe('line protocol round trip through influxd 1.x', () => {
  let influx: Server;
  before(async () => {
    influx = await startInfluxd({ database: 'rt' });
  });
  after(async () => influx?.stop());

  it('stores every generated name and string value it accepts byte-exact, and refuses the rest with a reason', async () => {
    const cases = generated();
    const accepted = new Map<Place, Map<number, string>>();
    const lines: string[] = [];
    const refusedCodes = new Set<string>();
    for (const place of ['measurement', 'tagKey', 'tagValue', 'fieldKey', 'stringValue'] as Place[]) {
      const ok = new Map<number, string>();
      accepted.set(place, ok);
      cases.forEach((s, i) => {
        try {
          lines.push(encodeLine(pointFor(place, s, i)));
          ok.set(i, s);
        } catch (err) {
          assert.ok(err instanceof LineProtocolError, String(err));
          assert.ok(err.message.length > 10);
          refusedCodes.add(err.code);
        }
      });
    }
    const res = await fetch(`${influx.url}/write?db=rt&precision=ns`, {
      method: 'POST',
      body: lines.join('\n'),
    });
    assert.equal(res.status, 204, await res.text());
    const q = (text: string) => influxRows(influx.url, 'rt', text);

    // Measurements: exactly the accepted names, plus the fixed ones of the other places.
    const measurements = new Set((await q('SHOW MEASUREMENTS')).map((r) => r.name as string));
    const expected = new Set([
      ...accepted.get('measurement')!.values(),
      'tagKey',
      'tagValue',
      'fieldKey',
      'stringValue',
    ]);
    assert.deepEqual([...measurements].sort(), [...expected].sort());

    const tagKeys = new Set((await q('SHOW TAG KEYS FROM "tagKey"')).map((r) => r.tagKey as string));
    assert.deepEqual([...tagKeys].sort(), [...new Set([...accepted.get('tagKey')!.values(), 'k'])].sort());

    const tagValues = await q('SELECT * FROM "tagValue"');
    assert.equal(tagValues.length, accepted.get('tagValue')!.size);
    for (const row of tagValues) {
      const i = Number(String(row.k).split('-')[1]);
      assert.equal(row.t, accepted.get('tagValue')!.get(i), `tag value ${i}`);
    }

    const fieldKeys = new Set((await q('SHOW FIELD KEYS FROM "fieldKey"')).map((r) => r.fieldKey as string));
    assert.deepEqual([...fieldKeys].sort(), [...new Set(accepted.get('fieldKey')!.values())].sort());

    const strings = await q('SELECT * FROM "stringValue"');
    assert.equal(strings.length, accepted.get('stringValue')!.size);
    for (const row of strings) {
      const i = Number(String(row.k).split('-')[1]);
      assert.equal(row.s, accepted.get('stringValue')!.get(i), `string value ${i}`);
    }

    // What is refused, and that it is refused for a reason the docs name.
    assert.deepEqual([...refusedCodes].sort(), [
      'AMBIGUOUS_BACKSLASH',
      'CONTROL_CHARACTER',
      'INVALID_UTF16',
      'LINE_BREAK',
      'RESERVED_NAME',
    ]);
    // A backslash before a quote is what influxd changes in measurements and field keys only.
    for (const place of ['measurement', 'fieldKey'] as Place[])
      assert.ok(![...accepted.get(place)!.values()].some((s) => s.includes('\\"')), place);
    for (const place of ['tagKey', 'tagValue', 'stringValue'] as Place[])
      assert.ok(
        [...accepted.get(place)!.values()].some((s) => s.includes('\\"')),
        place,
      );
  });
});
