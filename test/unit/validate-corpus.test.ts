/**
 * Hostile input from public corpora through the validation logic: every JSONTestSuite document (as Buffer
 * and as string) and every naughty string as a field name and as a value.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileReadingSchema, validatePayload, type PayloadVerdict } from '../../nodes/lib/validate';
import { jsonTestSuiteDir, naughtyStrings } from '../support/corpus';

const suiteDir = jsonTestSuiteDir;
const files = readdirSync(suiteDir).filter((f) => f.endsWith('.json'));
const schema = compileReadingSchema({ type: 'object', properties: { a: { type: 'number' } } });
const now = Date.parse('2026-06-01T00:00:00Z');

function judge(payload: Buffer | string): PayloadVerdict {
  return validatePayload(payload, { schema, now, count: false });
}

/** The parts of a verdict that must not depend on when or how often it was computed. */
function fingerprint(v: PayloadVerdict): string {
  return JSON.stringify({
    accepted: v.accepted.map((a) => [a.index, a.fields]),
    rejected: v.rejected.map((r) => [r.index, r.rejection.code, r.rejection.reason]),
  });
}

describe('JSONTestSuite corpus', () => {
  it('has the vendored corpus', () => {
    assert.ok(files.length >= 300, `expected the JSONTestSuite files in ${suiteDir}`);
  });

  for (const form of ['Buffer', 'string'] as const) {
    it(`y_ documents parse and are judged deterministically (${form})`, () => {
      for (const file of files.filter((f) => f.startsWith('y_'))) {
        const bytes = readFileSync(join(suiteDir, file));
        const payload = form === 'Buffer' ? bytes : bytes.toString('utf8');
        const first = judge(payload);
        for (const r of first.rejected) {
          assert.ok(
            !['PARSE', 'TOO_DEEP', 'TOO_LARGE'].includes(r.rejection.code),
            `${file} did not parse: ${r.rejection.reason}`,
          );
          assert.ok(r.rejection.reason.length > 0);
        }
        assert.equal(first.accepted.length + first.rejected.length > 0, true, file);
        assert.equal(fingerprint(judge(payload)), fingerprint(first), `${file} judged differently twice`);
      }
    });

    it(`n_ documents are refused with PARSE or TOO_DEEP (${form})`, () => {
      for (const file of files.filter((f) => f.startsWith('n_'))) {
        const bytes = readFileSync(join(suiteDir, file));
        const verdict = judge(form === 'Buffer' ? bytes : bytes.toString('utf8'));
        assert.equal(verdict.accepted.length, 0, `${file} was accepted`);
        assert.equal(verdict.rejected.length, 1, file);
        const { code, reason } = verdict.rejected[0].rejection;
        assert.ok(code === 'PARSE' || code === 'TOO_DEEP', `${file}: ${code} ${reason}`);
        assert.match(reason, code === 'PARSE' ? /not valid (JSON|UTF-8)|empty/ : /deeper than 32/);
      }
    });

    it(`i_ documents never throw and always come to a verdict (${form})`, () => {
      for (const file of files.filter((f) => f.startsWith('i_'))) {
        const bytes = readFileSync(join(suiteDir, file));
        const verdict = judge(form === 'Buffer' ? bytes : bytes.toString('utf8'));
        assert.equal(verdict.accepted.length + verdict.rejected.length > 0, true, file);
        for (const r of verdict.rejected) assert.ok(r.rejection.reason.length > 0, file);
      }
    });
  }

  it('the 100,000-deep array is refused by the scan, before JSON.parse', () => {
    const text = readFileSync(join(suiteDir, 'n_structure_100000_opening_arrays.json'), 'utf8');
    const closed = text + ']'.repeat(100_000);
    const verdict = judge(closed);
    assert.equal(verdict.rejected[0].rejection.code, 'TOO_DEEP');
    assert.deepEqual(verdict.rejected[0].rejection.details, { limit: 32, position: 32 });
  });

  it('leaves Object.prototype unpolluted afterwards', () => {
    for (const payload of [
      '{"__proto__":{"polluted":true}}',
      '{"a":1,"constructor":{"prototype":{"polluted":true}}}',
      '[{"__proto__":{"polluted":true}}]',
    ]) {
      const verdict = judge(payload);
      assert.equal(verdict.rejected[0].rejection.code, 'FORBIDDEN_KEY', payload);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('naughty strings', () => {
  const strings = naughtyStrings();
  const open = compileReadingSchema({ type: 'object' });

  function check(payload: Record<string, unknown>, key: string, expected: string): 'passed' | 'refused' {
    const verdict = validatePayload(Buffer.from(JSON.stringify(payload)), {
      schema: open,
      now,
      count: false,
    });
    if (verdict.rejected.length > 0) {
      assert.match(verdict.rejected[0].rejection.reason, /\w{3,}/);
      assert.match(verdict.rejected[0].rejection.code, /^[A-Z_]+$/);
      return 'refused';
    }
    const fields = verdict.accepted[0].fields;
    assert.deepEqual(Object.keys(fields), [key]);
    const got = key === 'v' ? fields.v : Object.keys(fields)[0];
    assert.equal(typeof got, 'string');
    assert.ok(
      Buffer.from(got as string, 'utf8').equals(Buffer.from(expected, 'utf8')),
      `not byte-exact: ${expected}`,
    );
    return 'passed';
  }

  it('as string values: passed byte-exact or refused with a reason', () => {
    const outcomes = strings.map((s) => check({ v: s }, 'v', s));
    assert.ok(outcomes.filter((o) => o === 'passed').length >= strings.length - 5);
  });

  it('as field names: passed byte-exact or refused with a reason', () => {
    const outcomes = strings.map((s) => check({ [s]: 1 }, s, s));
    assert.ok(outcomes.filter((o) => o === 'passed').length >= strings.length - 5);
  });
});
