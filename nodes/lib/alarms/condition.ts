/**
 * Alarm conditions are data, never code: a comparison `{ field, op, value }` or `{ and: [...] }` /
 * `{ or: [...] }` of them. The editor shows and accepts the same thing as text, e.g.
 * `temperature > -10 and door == "open"`, which `parseCondition` turns into that data. Nothing here evaluates
 * user text as JavaScript: a condition is compiled into a tree of closures over a validated structure.
 */

export type Operator = '>' | '>=' | '<' | '<=' | '==' | '!=';
export type Scalar = number | string | boolean;
export interface Comparison {
  field: string;
  op: Operator;
  value: Scalar;
}
export type Condition = Comparison | { and: Condition[] } | { or: Condition[] };

/** Three-valued result: a reading without the field (or with a value of another type) decides nothing. */
export const TRUE = 1;
export const FALSE = 0;
export const UNKNOWN = -1;
export type Truth = typeof TRUE | typeof FALSE | typeof UNKNOWN;

export interface CompiledCondition {
  test(record: Readonly<Record<string, unknown>>): Truth;
  /** The fields it reads, in order of first use: the values that decided an alarm are these. */
  fields: string[];
  text: string;
}

const OPERATORS: readonly Operator[] = ['>=', '<=', '==', '!=', '>', '<'];
const FIELD = /^[A-Za-z_][\w.-]{0,63}$/;
const MAX_TEXT = 1000;
const MAX_COMPARISONS = 32;
const MAX_DEPTH = 8;

export class ConditionError extends Error {}

/** Parses the text form: comparisons joined by `and`/`or` (and binds tighter), parentheses allowed. */
export function parseCondition(text: string): Condition {
  if (text.length > MAX_TEXT) throw new ConditionError(`longer than ${MAX_TEXT} characters`);
  const tokens = tokenize(text);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const fail = (what: string): never => {
    const t = peek();
    throw new ConditionError(
      t ? `${what} at position ${t.at + 1}, found '${t.text}'` : `${what} at the end of the condition`,
    );
  };
  const joined = (word: 'and' | 'or', next: () => Condition): Condition => {
    const parts = [next()];
    while (peek()?.kind === 'word' && peek()?.text.toLowerCase() === word) {
      pos++;
      parts.push(next());
    }
    return parts.length === 1 ? parts[0] : word === 'and' ? { and: parts } : { or: parts };
  };
  const or = (): Condition => joined('or', and);
  const and = (): Condition => joined('and', primary);
  const primary = (): Condition => {
    const t = peek();
    if (t?.kind === 'paren' && t.text === '(') {
      pos++;
      const inner = or();
      if (peek()?.text !== ')') fail("expected ')'");
      pos++;
      return inner;
    }
    if (t?.kind !== 'word' || !FIELD.test(t.text)) fail('expected a field name');
    const field = (t as Token).text;
    pos++;
    const op = peek();
    if (op?.kind !== 'op') fail(`expected an operator (${OPERATORS.join(' ')}) after '${field}'`);
    pos++;
    const v = peek();
    let value: Scalar;
    if (v?.kind === 'number') value = Number(v.text);
    else if (v?.kind === 'string') value = v.text;
    else if (v?.kind === 'word' && (v.text === 'true' || v.text === 'false')) value = v.text === 'true';
    else return fail(`expected a number, "text", true or false after '${field} ${(op as Token).text}'`);
    pos++;
    return { field, op: (op as Token).text as Operator, value };
  };
  if (tokens.length === 0) throw new ConditionError('the condition is empty');
  const cond = or();
  if (pos < tokens.length) fail("expected 'and', 'or' or the end");
  return cond;
}

/** The text form of a condition (what `parseCondition` reads back to the same data). */
export function formatCondition(c: Condition, nested = false): string {
  if ('and' in c || 'or' in c) {
    const word = 'and' in c ? 'and' : 'or';
    const parts = ('and' in c ? c.and : c.or).map((p) => formatCondition(p, true));
    const s = parts.join(` ${word} `);
    return nested && parts.length > 1 ? `(${s})` : s;
  }
  return `${c.field} ${c.op} ${typeof c.value === 'string' ? JSON.stringify(c.value) : String(c.value)}`;
}

/**
 * Validates a condition given as text or data and compiles it. `allowed` limits the field names (rules that
 * compare a computed value, like a rate, offer only that value's name). Throws ConditionError saying what is wrong.
 */
export function compileCondition(input: unknown, allowed?: readonly string[]): CompiledCondition {
  const cond = typeof input === 'string' ? parseCondition(input) : input;
  const fields: string[] = [];
  let comparisons = 0;
  const build = (c: unknown, depth: number): ((r: Readonly<Record<string, unknown>>) => Truth) => {
    if (depth > MAX_DEPTH) throw new ConditionError(`nested deeper than ${MAX_DEPTH} levels`);
    if (typeof c !== 'object' || c === null || Array.isArray(c))
      throw new ConditionError('a condition is { field, op, value }, { and: [...] } or { or: [...] }');
    const o = c as Record<string, unknown>;
    if ('and' in o || 'or' in o) {
      const list = o.and ?? o.or;
      if (!Array.isArray(list) || list.length === 0)
        throw new ConditionError(`'${'and' in o ? 'and' : 'or'}' needs a non-empty list of conditions`);
      const parts = list.map((p) => build(p, depth + 1));
      return 'and' in o ? allOf(parts) : anyOf(parts);
    }
    const { field, op, value } = o;
    if (typeof field !== 'string' || !FIELD.test(field))
      throw new ConditionError(`'${String(field)}' is not a field name (letters, digits, _ . -)`);
    if (allowed && !allowed.includes(field))
      throw new ConditionError(`'${field}' is not available here; use ${allowed.join(' or ')}`);
    if (typeof op !== 'string' || !OPERATORS.includes(op as Operator))
      throw new ConditionError(`'${String(op)}' is not an operator (${OPERATORS.join(' ')})`);
    const isNumber = typeof value === 'number' && Number.isFinite(value);
    if (!isNumber && typeof value !== 'string' && typeof value !== 'boolean')
      throw new ConditionError(`the value for '${field}' must be a number, text or true/false`);
    if (!isNumber && op !== '==' && op !== '!=')
      throw new ConditionError(`'${field} ${op}' compares numbers; ${JSON.stringify(value)} is not one`);
    if (++comparisons > MAX_COMPARISONS) throw new ConditionError(`more than ${MAX_COMPARISONS} comparisons`);
    if (!fields.includes(field)) fields.push(field);
    return comparison(field, op as Operator, value);
  };
  const test = build(cond, 0);
  return { test, fields, text: formatCondition(cond as Condition) };
}

function comparison(
  field: string,
  op: Operator,
  value: Scalar,
): (r: Readonly<Record<string, unknown>>) => Truth {
  const kind = typeof value;
  const t = (b: boolean): Truth => (b ? TRUE : FALSE);
  switch (op) {
    case '>':
      return (r) => (typeof r[field] === 'number' ? t(r[field] > (value as number)) : UNKNOWN);
    case '>=':
      return (r) => (typeof r[field] === 'number' ? t(r[field] >= (value as number)) : UNKNOWN);
    case '<':
      return (r) => (typeof r[field] === 'number' ? t(r[field] < (value as number)) : UNKNOWN);
    case '<=':
      return (r) => (typeof r[field] === 'number' ? t(r[field] <= (value as number)) : UNKNOWN);
    case '==':
      return (r) => (typeof r[field] === kind ? t(r[field] === value) : UNKNOWN);
    case '!=':
      return (r) => (typeof r[field] === kind ? t(r[field] !== value) : UNKNOWN);
  }
}

/** Kleene logic: false wins an `and`, true wins an `or`, otherwise an unknown part makes it unknown. */
function allOf(parts: ((r: Readonly<Record<string, unknown>>) => Truth)[]) {
  return (r: Readonly<Record<string, unknown>>): Truth => {
    let result: Truth = TRUE;
    for (const p of parts) {
      const v = p(r);
      if (v === FALSE) return FALSE;
      if (v === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

function anyOf(parts: ((r: Readonly<Record<string, unknown>>) => Truth)[]) {
  return (r: Readonly<Record<string, unknown>>): Truth => {
    let result: Truth = FALSE;
    for (const p of parts) {
      const v = p(r);
      if (v === TRUE) return TRUE;
      if (v === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

interface Token {
  kind: 'word' | 'number' | 'string' | 'op' | 'paren';
  text: string;
  at: number;
}

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const at = i;
    if (ch === '(' || ch === ')') {
      tokens.push({ kind: 'paren', text: ch, at });
      i++;
      continue;
    }
    const op = OPERATORS.find((o) => text.startsWith(o, i));
    if (op) {
      tokens.push({ kind: 'op', text: op, at });
      i += op.length;
      continue;
    }
    const num = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?/i.exec(text.slice(i));
    if (num) {
      tokens.push({ kind: 'number', text: num[0], at });
      i += num[0].length;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const end = text.indexOf(ch, i + 1);
      if (end < 0) throw new ConditionError(`text starting at position ${at + 1} has no closing ${ch}`);
      tokens.push({ kind: 'string', text: text.slice(i + 1, end), at });
      i = end + 1;
      continue;
    }
    const word = /^[A-Za-z_][\w.-]*/.exec(text.slice(i));
    if (!word) throw new ConditionError(`unexpected '${ch}' at position ${at + 1}`);
    tokens.push({ kind: 'word', text: word[0], at });
    i += word[0].length;
  }
  return tokens;
}
