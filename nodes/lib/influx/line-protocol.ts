/**
 * Line protocol for InfluxDB 1.x/2.x/3.x, written byte for byte as @influxdata/influxdb-client's `Point` writes
 * it (tags and fields sorted by key, the same escapes; test/unit/influx-line-protocol.test.ts compares the two)
 * but without a `Point` object per reading, and guarded where `Point` alone would lose or corrupt data:
 * - a measurement starting with `#` makes the line a comment (silently lost): refused;
 * - names starting with `_` are reserved in 2.x/3.x, tag/field key `time` is refused by 1.x: refused;
 * - `Point` writes a trailing backslash in a tag value as is, which escapes the following space (a broken or
 *   changed line), and 1.x and 2.x unescape `\\`, `\,`, `\=`, `\ ` differently: a backslash before those
 *   characters or at the end of a name or tag value is refused (other backslashes pass through unchanged);
 * - `Point` escapes newline/tab in names and tag values as `\n`/`\t`, which 1.x stores as two characters:
 *   control characters in names and tag values are refused;
 * - InfluxDB 1.x reads `\"` in a measurement or field key as `"` (measured with influxd 1.6.7: `a\"b` stored as
 *   `a"b`), while tag keys, tag values and string values keep it: a backslash before `"` there is refused;
 * - a field with the name of one of the point's tags would take the tag's place in queries: refused;
 * - CR/LF in string field values could be read as a line break by a parser that splits lines first, which
 *   would inject a line: refused;
 * - NaN/Infinity have no line-protocol form: refused; integers beyond 2^53 are written exactly (bigint).
 * Every refusal is a `LineProtocolError` with a stable `code` and a sentence for people.
 */
export type FieldValue = number | boolean | string | bigint;
export type FieldType = 'float' | 'integer' | 'string' | 'boolean';

export interface PointInput {
  measurement: string;
  tags?: Record<string, string>;
  fields: Record<string, FieldValue>;
  /** Nanoseconds since the epoch as a decimal string (fixed when the reading was accepted). */
  timeNs: string;
}

export class LineProtocolError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'LineProtocolError';
  }
}

/** InfluxDB's limit for a key and for a string value is 64 KiB. */
const MAX_NAME_BYTES = 65_535;
const MAX_STRING_BYTES = 65_535;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /\p{Cs}/u;
const AMBIGUOUS_BACKSLASH = /\\(?=[\\,= ]|$)/;
const LINE_BREAK = /[\r\n]/;
const BACKSLASH_QUOTE = '\\"';
const TIME_NS = /^-?\d{1,19}$/;

// Point's escapes: measurement `,` and space; tag keys, tag values and field keys also `=`; newline, CR and tab
// as `\n`, `\r`, `\t` (refused in names before they get here); string values `"` and `\`.
const ESCAPED: Record<string, string> = {
  ',': '\\,',
  ' ': '\\ ',
  '=': '\\=',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '"': '\\"',
  '\\': '\\\\',
};
const escapeChar = (c: string): string => ESCAPED[c];
const MEASUREMENT_SPECIAL = /[, \n\r\t]/g;
const KEY_SPECIAL = /[,= \n\r\t]/g;
const QUOTED_SPECIAL = /["\\]/g;

function escapeMeasurement(s: string): string {
  MEASUREMENT_SPECIAL.lastIndex = 0;
  return MEASUREMENT_SPECIAL.test(s) ? s.replace(MEASUREMENT_SPECIAL, escapeChar) : s;
}

function escapeKey(s: string): string {
  KEY_SPECIAL.lastIndex = 0;
  return KEY_SPECIAL.test(s) ? s.replace(KEY_SPECIAL, escapeChar) : s;
}

function quoted(s: string): string {
  QUOTED_SPECIAL.lastIndex = 0;
  return `"${QUOTED_SPECIAL.test(s) ? s.replace(QUOTED_SPECIAL, escapeChar) : s}"`;
}

/** `key=value` pairs joined by commas, sorted by key as Point sorts them (UTF-16 code unit order). */
function sortedPairs(keys: string[], texts: string[], lead: string): string {
  const order = keys.length > 1 ? keys.map((_, i) => i).sort((a, b) => (keys[a] < keys[b] ? -1 : 1)) : [0];
  let out = '';
  for (let n = 0; n < order.length; n++) {
    const i = order[n];
    out += `${n === 0 ? lead : ','}${escapeKey(keys[i])}=${texts[i]}`;
  }
  return out;
}

function checkText(what: string, s: string, maxBytes: number): void {
  if (LONE_SURROGATE.test(s))
    throw new LineProtocolError(
      'INVALID_UTF16',
      `${what} contains an unpaired surrogate (not valid Unicode)`,
    );
  if (Buffer.byteLength(s) > maxBytes)
    throw new LineProtocolError('TOO_LONG', `${what} is longer than ${maxBytes} bytes`);
}

/**
 * Strings that passed a check: device ids, tag keys and field names repeat on every point, so each is
 * validated once (bounded: cleared when it grows past 10,000 entries).
 */
class Checked {
  private readonly seen = new Set<string>();
  has(s: string): boolean {
    return this.seen.has(s);
  }
  add(s: string): void {
    if (this.seen.size >= 10_000) this.seen.clear();
    this.seen.add(s);
  }
}
const checkedValues = new Checked();
const checkedNames = new Checked();

function checkKeyOrTagValue(what: string, s: string): void {
  if (checkedValues.has(s)) return;
  validateKeyOrTagValue(what, s);
  checkedValues.add(s);
}

function validateKeyOrTagValue(what: string, s: string): void {
  if (s.length === 0) throw new LineProtocolError('EMPTY', `${what} is empty`);
  checkText(what, s, MAX_NAME_BYTES);
  if (CONTROL.test(s))
    throw new LineProtocolError(
      'CONTROL_CHARACTER',
      `${what} ${JSON.stringify(s)} contains a control character (newline, tab, ...), which line protocol cannot carry there`,
    );
  if (AMBIGUOUS_BACKSLASH.test(s))
    throw new LineProtocolError(
      'AMBIGUOUS_BACKSLASH',
      `${what} ${JSON.stringify(s)} has a backslash at the end or before a space, comma, equals sign or backslash, which InfluxDB versions read back differently`,
    );
}

/** Measurements and field keys: InfluxDB 1.x drops the backslash of `\"` there. */
function checkNoBackslashQuote(what: string, s: string): void {
  if (s.includes(BACKSLASH_QUOTE))
    throw new LineProtocolError(
      'AMBIGUOUS_BACKSLASH',
      `${what} ${JSON.stringify(s)} has a backslash before a double quote, which InfluxDB stores without the backslash`,
    );
}

function checkName(what: string, s: string): void {
  if (checkedNames.has(s)) return;
  validateKeyOrTagValue(what, s);
  if (s.startsWith('_'))
    throw new LineProtocolError(
      'RESERVED_NAME',
      `${what} ${JSON.stringify(s)} starts with "_", reserved by InfluxDB`,
    );
  checkedNames.add(s);
}

/** Formats a finite float the way InfluxDB reads it back as float (never with an `i` suffix). */
function floatText(name: string, v: number): string {
  if (!Number.isFinite(v))
    throw new LineProtocolError(
      'NOT_FINITE',
      `field ${JSON.stringify(name)} is ${v}, which InfluxDB cannot store`,
    );
  return String(v);
}

function integerText(name: string, v: number | bigint): string {
  const big = typeof v === 'bigint' ? v : Number.isSafeInteger(v) ? BigInt(v) : undefined;
  if (big === undefined || big < INT64_MIN || big > INT64_MAX)
    throw new LineProtocolError(
      'NOT_INTEGER',
      `field ${JSON.stringify(name)} must be a 64-bit integer (got ${String(v)})`,
    );
  return `${big}i`;
}

/** The type a value is written as: numbers are floats unless the field is declared integer. */
function fieldTypeOf(value: FieldValue, integer: boolean): FieldType {
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'number') return integer ? 'integer' : 'float';
  return typeof value === 'boolean' ? 'boolean' : 'string';
}

/**
 * Remembers the type of each measurement+field written by this process so a later value of another type is
 * refused here (with a reason) instead of becoming a type conflict in InfluxDB. Bounded: past `maxEntries`
 * the oldest half is forgotten (InfluxDB then remains the judge).
 */
export class FieldTypes {
  /** measurement -> field -> type: looked up per field of every point, so no key string is built for it. */
  private readonly types = new Map<string, Map<string, FieldType>>();
  private size = 0;

  constructor(private readonly maxEntries = 100_000) {}

  check(measurement: string, field: string, type: FieldType): void {
    let fields = this.types.get(measurement);
    const known = fields?.get(field);
    if (known === undefined) {
      if (this.size >= this.maxEntries) this.forgetOldestHalf();
      fields = this.types.get(measurement);
      if (!fields) this.types.set(measurement, (fields = new Map<string, FieldType>()));
      fields.set(field, type);
      this.size++;
    } else if (known !== type) {
      throw new LineProtocolError(
        'TYPE_CONFLICT',
        `field ${JSON.stringify(field)} of ${JSON.stringify(measurement)} was written as ${known}, now ${type}`,
      );
    }
  }

  /** Forgets the first half of the entries (by measurement, then field, in the order they were added). */
  private forgetOldestHalf(): void {
    let drop = this.maxEntries >> 1;
    for (const [measurement, fields] of this.types) {
      for (const field of fields.keys()) {
        if (drop-- <= 0) return;
        fields.delete(field);
        this.size--;
      }
      this.types.delete(measurement);
    }
  }
}

export interface EncodeOptions {
  /** Field names whose numbers are written as integers (`42i`); every other number is a float. */
  integerFields?: ReadonlySet<string>;
  fieldTypes?: FieldTypes;
}

/** One line of line protocol for `p`, or a `LineProtocolError` saying why it cannot be written faithfully. */
export function encodeLine(p: PointInput, opts: EncodeOptions = {}): string {
  checkKeyOrTagValue('measurement', p.measurement);
  if (p.measurement.startsWith('#'))
    throw new LineProtocolError(
      'RESERVED_NAME',
      `measurement ${JSON.stringify(p.measurement)} starts with "#", which makes the line a comment`,
    );
  checkNoBackslashQuote('measurement', p.measurement);
  if (!TIME_NS.test(p.timeNs))
    throw new LineProtocolError(
      'BAD_TIMESTAMP',
      `timestamp ${JSON.stringify(p.timeNs)} is not integer nanoseconds`,
    );
  const tagKeys: string[] = [];
  const tagTexts: string[] = [];
  if (p.tags) {
    for (const key of Object.keys(p.tags)) {
      const value = p.tags[key];
      checkName('tag key', key);
      if (key === 'time')
        throw new LineProtocolError('RESERVED_NAME', 'tag key "time" is reserved by InfluxDB');
      if (typeof value !== 'string')
        throw new LineProtocolError('BAD_TAG', `tag ${JSON.stringify(key)} must be a string`);
      checkKeyOrTagValue(`tag ${JSON.stringify(key)} value`, value);
      tagKeys.push(key);
      tagTexts.push(escapeKey(value));
    }
  }
  const fieldKeys = Object.keys(p.fields);
  if (fieldKeys.length === 0) throw new LineProtocolError('NO_FIELDS', 'a point needs at least one field');
  const fieldTexts: string[] = [];
  for (const name of fieldKeys) {
    const value = p.fields[name];
    checkName('field key', name);
    checkNoBackslashQuote('field key', name);
    if (name === 'time')
      throw new LineProtocolError('RESERVED_NAME', 'field key "time" is reserved by InfluxDB');
    if (p.tags !== undefined && Object.prototype.hasOwnProperty.call(p.tags, name))
      throw new LineProtocolError(
        'FIELD_IS_TAG',
        `field ${JSON.stringify(name)} has the name of a tag of the point, which it would take the place of in queries`,
      );
    const integer = opts.integerFields?.has(name) ?? false;
    const type = fieldTypeOf(value, integer);
    switch (type) {
      case 'float':
        fieldTexts.push(floatText(name, value as number));
        break;
      case 'integer':
        // Exact also beyond 2^53 (Point.intField is not).
        fieldTexts.push(integerText(name, value as number | bigint));
        break;
      case 'boolean':
        // The spelled-out form is what the reference encoder writes (Point writes T/F).
        fieldTexts.push(value ? 'true' : 'false');
        break;
      case 'string':
        if (typeof value !== 'string')
          throw new LineProtocolError('BAD_FIELD', `field ${JSON.stringify(name)} has an unsupported type`);
        checkText(`field ${JSON.stringify(name)}`, value, MAX_STRING_BYTES);
        if (LINE_BREAK.test(value))
          throw new LineProtocolError(
            'LINE_BREAK',
            `field ${JSON.stringify(name)} contains a line break, which some InfluxDB parsers read as the end of the line`,
          );
        fieldTexts.push(quoted(value));
        break;
    }
    opts.fieldTypes?.check(p.measurement, name, type);
  }
  const tags = tagKeys.length === 0 ? '' : sortedPairs(tagKeys, tagTexts, ',');
  return `${escapeMeasurement(p.measurement)}${tags}${sortedPairs(fieldKeys, fieldTexts, ' ')} ${p.timeNs}`;
}

/** Nanoseconds for a timestamp given as ms since epoch (number), ISO-8601 text, a Date, or ns (bigint). */
export function toTimeNs(t: number | string | Date | bigint): string {
  if (typeof t === 'bigint') return t.toString();
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : t;
  if (!Number.isFinite(ms))
    throw new LineProtocolError(
      'BAD_TIMESTAMP',
      `timestamp ${JSON.stringify(String(t))} is not a valid time`,
    );
  // Whole positive ms (most readings): the digits and six zeros, without BigInt arithmetic per reading.
  if (ms > 0 && Number.isSafeInteger(ms)) return `${ms}000000`;
  // ms may carry a fraction (sub-ms precision). Near today's times a double resolves ~0.24 µs, so the fraction
  // is exact to the microsecond only: rounded to µs (a time of 1764918000123.001 ms becomes ...123001000 ns).
  const whole = Math.trunc(ms);
  const fracUs = Math.round((ms - whole) * 1000);
  return (BigInt(whole) * 1_000_000n + BigInt(fracUs) * 1000n).toString();
}
