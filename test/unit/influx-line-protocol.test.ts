import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Point } from '@influxdata/influxdb-client';
import {
  encodeLine,
  FieldTypes,
  LineProtocolError,
  toTimeNs,
  type FieldValue,
  type PointInput,
} from '../../nodes/lib/influx/line-protocol';
import { lineProtocolCorpusFile } from '../support/corpus';

interface CorpusValue {
  float?: number;
  int?: string;
  uint?: string;
  string?: string;
  bool?: boolean;
}
interface EncodeCase {
  input: {
    key: string;
    point: {
      time: string;
      name: string;
      tags: { key: string; value: string }[];
      fields: { key: string; value: CorpusValue }[];
    };
  };
  output: { result?: string; error?: string };
}

/** The corpus holds 64-bit integers that JSON.parse would round: read times and ints as strings. */
function loadEncodeCases(): EncodeCase[] {
  const text = readFileSync(lineProtocolCorpusFile, 'utf8').replace(
    /"(time|int|uint)": (-?\d+)/g,
    '"$1": "$2"',
  );
  return Object.values((JSON.parse(text) as { encode: Record<string, EncodeCase> }).encode);
}

function toPoint(c: EncodeCase): PointInput {
  const p = c.input.point;
  const fields: Record<string, FieldValue> = {};
  for (const f of p.fields) {
    const v = f.value;
    fields[f.key] =
      v.int !== undefined
        ? BigInt(v.int)
        : v.float !== undefined
          ? v.float
          : v.bool !== undefined
            ? v.bool
            : v.string!;
  }
  return {
    measurement: p.name,
    tags: Object.fromEntries(p.tags.map((t) => [t.key, t.value])),
    fields,
    timeNs: p.time,
  };
}

/** Splits a line's field section into key=value texts (outside quotes), to compare floats numerically. */
function fieldTexts(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '\\' && i + 1 < line.length) {
      cur += ch + line[++i];
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (!quoted && (ch === ',' || ch === ' ')) {
      out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  out.push(cur);
  return out;
}

/** Equal, or equal except for float formatting (Go writes 6.632243e+06 where JavaScript writes 6632243). */
function sameLine(ours: string, expected: string): boolean {
  if (ours === expected) return true;
  const a = fieldTexts(ours);
  const b = fieldTexts(expected);
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    if (x === b[i]) return true;
    const [ka, va] = [x.slice(0, x.lastIndexOf('=')), x.slice(x.lastIndexOf('=') + 1)];
    const [kb, vb] = [b[i].slice(0, b[i].lastIndexOf('=')), b[i].slice(b[i].lastIndexOf('=') + 1)];
    return ka === kb && /^[-\d.e+]+$/.test(va) && /^[-\d.e+]+$/.test(vb) && Number(va) === Number(vb);
  });
}

describe('line protocol encoding', () => {
  it('agrees with every encode case of the line-protocol corpus, refusing only what it documents', () => {
    const cases = loadEncodeCases();
    assert.equal(cases.length, 115);
    const refusedByDesign: string[] = [];
    for (const c of cases) {
      let ours: string | undefined;
      let err: LineProtocolError | undefined;
      try {
        ours = encodeLine(toPoint(c));
      } catch (e) {
        if (!(e instanceof LineProtocolError)) throw e;
        err = e;
      }
      if (c.output.error !== undefined) {
        assert.ok(err, `${c.input.key}: expected a refusal (${c.output.error}), got ${ours}`);
      } else if (err) {
        // Refused on purpose (see the encoder): 1.x and 2.x unescape backslashes before specials
        // differently, and a raw line break inside a string is split by line-at-a-time parsers.
        refusedByDesign.push(`${c.input.key} ${err.code}`);
      } else {
        assert.ok(
          sameLine(ours!, c.output.result!),
          `${c.input.key}:\n ours ${ours}\n want ${c.output.result}`,
        );
      }
    }
    // Exactly the corpus cases with a backslash before `,` `=` or space in a key or tag value, and the
    // one with a newline in a string field.
    assert.deepEqual(refusedByDesign.sort(), [
      '20f288a995174bed597f0b405df7756b AMBIGUOUS_BACKSLASH',
      '65a52922c8cba2673eff7194628cc1e0 LINE_BREAK',
      '7c0c4a665d3581854019e2c01c485f56 AMBIGUOUS_BACKSLASH',
      '9ce4e716b8ba198c7a6a16cf12c8c1e3 AMBIGUOUS_BACKSLASH',
      'b3db57d81f6283cd8ffdc25df4ef66d1 AMBIGUOUS_BACKSLASH',
      'f84fa178c83d4c4fdeb903e337af0c88 AMBIGUOUS_BACKSLASH',
    ]);
  });

  const base = (over: Partial<PointInput>): PointInput => ({
    measurement: 'm',
    tags: { device: 'd1' },
    fields: { v: 1 },
    timeNs: '1000',
    ...over,
  });
  const refused = (p: PointInput, code: string): void =>
    assert.throws(
      () => encodeLine(p),
      (e: unknown) => e instanceof LineProtocolError && e.code === code && e.message.length > 10,
    );

  it('refuses what InfluxDB would treat specially or store changed, with a reason', () => {
    refused(base({ measurement: '#m' }), 'RESERVED_NAME');
    refused(base({ fields: { _v: 1 } }), 'RESERVED_NAME');
    refused(base({ tags: { _t: 'x' } }), 'RESERVED_NAME');
    refused(base({ tags: { time: 'x' } }), 'RESERVED_NAME');
    refused(base({ fields: { time: 1 } }), 'RESERVED_NAME');
    refused(base({ tags: { device: 'a\\' } }), 'AMBIGUOUS_BACKSLASH');
    refused(base({ tags: { device: 'a\nb' } }), 'CONTROL_CHARACTER');
    refused(base({ tags: { device: 'a\tb' } }), 'CONTROL_CHARACTER');
    refused(base({ measurement: 'm\r' }), 'CONTROL_CHARACTER');
    refused(base({ fields: { v: NaN } }), 'NOT_FINITE');
    refused(base({ fields: { v: Infinity } }), 'NOT_FINITE');
    refused(base({ fields: { v: -Infinity } }), 'NOT_FINITE');
    refused(base({ fields: { s: 'x\ny v=1 1' } }), 'LINE_BREAK');
    refused(base({ fields: { s: '\ud800' } }), 'INVALID_UTF16');
    refused(base({ fields: {} }), 'NO_FIELDS');
    refused(base({ tags: { device: '' } }), 'EMPTY');
    refused(base({ fields: { v: 2n ** 63n } }), 'NOT_INTEGER');
    refused(base({ timeNs: '12.5' }), 'BAD_TIMESTAMP');
    // InfluxDB 1.x drops the backslash of \" in measurements and field keys (not in tags or string values).
    refused(base({ fields: { 'a\\"b': 1 } }), 'AMBIGUOUS_BACKSLASH');
    refused(base({ measurement: 'm\\"' }), 'AMBIGUOUS_BACKSLASH');
    assert.equal(encodeLine(base({ tags: { 'k\\"': 'v\\"' } })), 'm,k\\"=v\\" v=1 1000');
    assert.equal(encodeLine(base({ fields: { s: 'a\\"b' } })), 'm,device=d1 s="a\\\\\\"b" 1000');
    // A field named like a tag of the point would take the tag's place in queries.
    refused(base({ fields: { device: 'v1', v: 1 } }), 'FIELD_IS_TAG');
  });

  it('writes numbers as floats unless the field is declared integer, and keeps each field one type', () => {
    assert.equal(encodeLine(base({ fields: { v: 42 } })), 'm,device=d1 v=42 1000');
    assert.equal(
      encodeLine(base({ fields: { v: 42 } }), { integerFields: new Set(['v']) }),
      'm,device=d1 v=42i 1000',
    );
    assert.throws(
      () => encodeLine(base({ fields: { v: 4.5 } }), { integerFields: new Set(['v']) }),
      /64-bit integer/,
    );
    assert.equal(encodeLine(base({ fields: { v: 2n ** 62n } })), `m,device=d1 v=${2n ** 62n}i 1000`);
    const types = new FieldTypes();
    encodeLine(base({ fields: { v: 1 } }), { fieldTypes: types });
    assert.throws(
      () => encodeLine(base({ fields: { v: 'one' } }), { fieldTypes: types }),
      (e: unknown) =>
        e instanceof LineProtocolError && e.code === 'TYPE_CONFLICT' && /float, now string/.test(e.message),
    );
    assert.equal(
      encodeLine(base({ measurement: 'other', fields: { v: 'one' } }), { fieldTypes: types }).length > 0,
      true,
    );
  });

  it('writes every accepted point byte for byte as the client library Point does', () => {
    // Point given the values as the encoder formats them (floats as String(v), integers with `i`, booleans
    // spelled out, strings through stringField): names, tags and string values with every character Point
    // escapes, keys out of order, several tags and fields.
    const names = ['m', 'a b', 'a,b', 'a=b', 'é ü', 'x"y', 'k\\q', 'Z', 'a', '𝄞'];
    const strings = ['', 'plain', 'with "quotes"', 'back\\slash', 'tab\there', 'a,b=c d', '\\"'];
    let compared = 0;
    for (let i = 0; i < 400; i++) {
      const pick = <T>(xs: T[], k: number): T => xs[(i * 7 + k * 13 + ((i * k) % 11)) % xs.length];
      const tags: Record<string, string> = {};
      const fields: Record<string, FieldValue> = {};
      for (let k = 0; k < 1 + (i % 3); k++) tags[`t${pick(names, k)}`] = pick(names, k + 5);
      for (let k = 0; k < 1 + (i % 4); k++) {
        const name = `f${pick(names, k + 2)}`;
        if (name in tags) continue;
        fields[name] = [1.5, -0, 42, true, false, pick(strings, k), 2n ** 60n][(i + k) % 7];
      }
      const p: PointInput = { measurement: pick(names, 9), tags, fields, timeNs: String(1e15 + i) };
      let ours: string;
      try {
        ours = encodeLine(p);
      } catch (e) {
        assert.ok(e instanceof LineProtocolError); // refused on purpose (e.g. `\"` in a field key)
        continue;
      }
      const point = new Point(p.measurement);
      for (const [k, v] of Object.entries(tags)) point.tag(k, v);
      for (const [k, v] of Object.entries(fields)) {
        if (typeof v === 'string') point.stringField(k, v);
        else point.fields[k] = typeof v === 'bigint' ? `${v}i` : String(v);
      }
      point.timestamp(p.timeNs);
      assert.equal(
        ours,
        point.toLineProtocol(),
        JSON.stringify(p, (_k, v: unknown) => String(v)),
      );
      compared++;
    }
    assert.ok(compared > 300, `${compared} points compared`);
  });

  it('remembers field types within a bound, forgetting the oldest half past it', () => {
    const types = new FieldTypes(4);
    types.check('m', 'a', 'float');
    types.check('m', 'b', 'float');
    types.check('n', 'c', 'float');
    types.check('n', 'd', 'float');
    types.check('n', 'e', 'float'); // past the bound: a and b are forgotten
    assert.throws(() => types.check('n', 'c', 'string'), /written as float, now string/);
    assert.throws(() => types.check('n', 'e', 'boolean'), /written as float, now boolean/);
    types.check('m', 'a', 'string');
  });

  it('converts accepted timestamps to exact nanoseconds', () => {
    assert.equal(toTimeNs(1700000000123), '1700000000123000000');
    assert.equal(toTimeNs('2023-11-14T22:13:20.123Z'), '1700000000123000000');
    assert.equal(toTimeNs(new Date(5)), '5000000');
    assert.equal(toTimeNs(1700000000123.5), '1700000000123500000');
    // A fraction is exact to the microsecond (what a double carries near today's times).
    assert.equal(toTimeNs(1700000000123.001), '1700000000123001000');
    assert.equal(toTimeNs(1700000000123.999), '1700000000123999000');
    assert.equal(toTimeNs(-1), '-1000000');
    assert.equal(toTimeNs(0), '0');
    assert.equal(toTimeNs(1), '1000000');
    assert.equal(toTimeNs(Number.MAX_SAFE_INTEGER), `${BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n}`);
    assert.equal(toTimeNs(123n), '123');
    assert.throws(() => toTimeNs('yesterday'), LineProtocolError);
  });
});
