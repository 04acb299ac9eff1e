import { isPlainObject, jsonEqual, valueAt } from './json-doc';

/** What a `where` condition sees of one twin. */
export interface TwinFacts {
  deviceId: string;
  type: string;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
  delta: Record<string, unknown>;
  desiredVersion: number;
  reportedVersion: number;
}

export type TwinPredicate = (twin: TwinFacts) => boolean;

type Operand = { path: string[] } | { literal: unknown };
type Op = '==' | '!=' | '<' | '<=' | '>' | '>=';
type Condition = { negate: boolean; left: Operand; op?: Op; right?: Operand };

/** Names a path may start with; any other bare word is a string. */
const ROOTS = new Set(['desired', 'reported', 'delta', 'deviceId', 'type', 'version']);
const MAX_WHERE_LENGTH = 1000;

/** A `where` expression that does not parse; `reason` says where and why. */
export class WhereSyntaxError extends Error {}

/**
 * Parses a twin filter (docs/twin.md, "Listing twins"):
 *
 *   condition ( "and" | "&&" ) condition ...
 *   condition := [ "!" ] operand [ op operand ]        op := == != < <= > >=
 *   operand   := path | "string" | 'string' | number | true | false | null | bare word (a string, e.g. 2.4.1)
 *   path      := desired.a.b | reported.a.b | delta[.a.b] | deviceId | type | version.desired | version.reported
 *
 * A condition without an operator holds when the value is present and not an empty object (`delta`: the
 * device has not caught up). `<`, `>` compare two numbers or two strings; anything else is false.
 */
export function parseWhere(text: string): TwinPredicate {
  if (text.length > MAX_WHERE_LENGTH)
    throw new WhereSyntaxError(`where is longer than ${MAX_WHERE_LENGTH} characters`);
  const tokens = tokenize(text);
  const conditions: Condition[] = [];
  let i = 0;
  const operand = (): Operand => {
    if (i >= tokens.length) throw new WhereSyntaxError('where ends where a value was expected');
    const t = tokens[i++];
    if (t.kind === 'literal') return { literal: t.value };
    if (t.kind !== 'word') throw new WhereSyntaxError(`"${t.text}" is not a value`);
    const path = t.text.split('.');
    if (!ROOTS.has(path[0])) return { literal: t.text };
    if (path.some((p) => p === '')) throw new WhereSyntaxError(`"${t.text}" has an empty path step`);
    if (path[0] === 'version' && (path.length !== 2 || !['desired', 'reported'].includes(path[1])))
      throw new WhereSyntaxError('version is version.desired or version.reported');
    return { path };
  };
  for (;;) {
    let negate = false;
    if (i < tokens.length && tokens[i].kind === 'not') {
      negate = true;
      i++;
    }
    const cond: Condition = { negate, left: operand() };
    const t = i < tokens.length ? tokens[i] : undefined;
    if (t?.kind === 'op') {
      if (negate) throw new WhereSyntaxError('"!" applies to a value, not to a comparison; use !=');
      i++;
      cond.op = t.text as Op;
      cond.right = operand();
    }
    conditions.push(cond);
    if (i === tokens.length) break;
    if (tokens[i].kind !== 'and') throw new WhereSyntaxError(`expected "and" before "${tokens[i].text}"`);
    i++;
  }
  return (twin) => conditions.every((c) => holds(c, twin));
}

function resolve(o: Operand, twin: TwinFacts): unknown {
  if ('literal' in o) return o.literal;
  const [root, ...rest] = o.path;
  switch (root) {
    case 'deviceId':
      return rest.length ? undefined : twin.deviceId;
    case 'type':
      return rest.length ? undefined : twin.type;
    case 'version':
      return rest[0] === 'desired' ? twin.desiredVersion : twin.reportedVersion;
    default:
      return valueAt(twin[root as 'desired' | 'reported' | 'delta'], rest);
  }
}

function holds(c: Condition, twin: TwinFacts): boolean {
  const left = resolve(c.left, twin);
  if (!c.op || !c.right) {
    const present = left !== undefined && !(isPlainObject(left) && Object.keys(left).length === 0);
    return present !== c.negate;
  }
  const right = resolve(c.right, twin);
  switch (c.op) {
    case '==':
      return jsonEqual(left, right);
    case '!=':
      return !jsonEqual(left, right);
    default: {
      const comparable =
        (typeof left === 'number' && typeof right === 'number') ||
        (typeof left === 'string' && typeof right === 'string');
      if (!comparable) return false;
      return c.op === '<'
        ? left < right
        : c.op === '<='
          ? left <= right
          : c.op === '>'
            ? left > right
            : left >= right;
    }
  }
}

interface Token {
  kind: 'word' | 'literal' | 'op' | 'and' | 'not';
  text: string;
  value?: unknown;
}

const TOKEN =
  /\s*(?:(&&)|(==|!=|<=|>=|<|>)|(!)|("(?:[^"\\]|\\.)*")|'([^']*)'|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])|([\w$][\w$.:+-]*))/y;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  TOKEN.lastIndex = 0;
  for (;;) {
    const at = TOKEN.lastIndex;
    if (text.slice(at).trim() === '') break;
    const m = TOKEN.exec(text) as (string | undefined)[] | null;
    if (!m)
      throw new WhereSyntaxError(`cannot read where at character ${at + 1}: "${text.slice(at, at + 20)}"`);
    if (m[1]) tokens.push({ kind: 'and', text: '&&' });
    else if (m[2]) tokens.push({ kind: 'op', text: m[2] });
    else if (m[3]) tokens.push({ kind: 'not', text: '!' });
    else if (m[4] !== undefined) tokens.push({ kind: 'literal', text: m[4], value: JSON.parse(m[4]) });
    else if (m[5] !== undefined) tokens.push({ kind: 'literal', text: m[5], value: m[5] });
    else if (m[6] !== undefined) tokens.push({ kind: 'literal', text: m[6], value: Number(m[6]) });
    else {
      const w = m[7] ?? '';
      if (w === 'and' || w === 'AND') tokens.push({ kind: 'and', text: w });
      else if (w === 'true' || w === 'false' || w === 'null')
        tokens.push({ kind: 'literal', text: w, value: JSON.parse(w) });
      else tokens.push({ kind: 'word', text: w });
    }
  }
  if (tokens.length === 0) throw new WhereSyntaxError('where is empty');
  return tokens;
}
