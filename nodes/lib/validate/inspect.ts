import type { Refusal, ValidateLimits } from './options';

interface Pending {
  value: object;
  depth: number;
  pointer: string;
}

/** State of one reading's walk: values left in the budget, and nested containers still to check. */
interface Walk {
  budget: number;
  /** Created for the first nested container: a flat reading allocates none. */
  stack: Pending[] | undefined;
}

/** JSON Pointer (RFC 6901) segment for one key or index. */
export function pointerSegment(key: string | number): string {
  return typeof key === 'number' ? `/${key}` : `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/**
 * Checks one reading's structure without recursion: depth, keys per object, array lengths, a budget of
 * values (so a shared sub-object cannot make an object payload explode), prototype-poisoning keys, numbers
 * JSON cannot carry faithfully and strings that are not valid Unicode. Returns the first problem.
 * `root` is a non-array object; `depth` is its nesting level (1 for a single reading, 2 inside a batch).
 * With `fields`, the root's properties except the reserved `ts` and `id` are copied into it in the same pass.
 */
export function inspectReading(
  root: object,
  limits: ValidateLimits,
  depth: number,
  fields?: Record<string, unknown>,
): Refusal | undefined {
  const walk: Walk = { budget: limits.maxBytes, stack: undefined };
  return inspectObject(root, '', depth, limits, walk, fields) ?? inspectNested(limits, walk);
}

/**
 * One object at `depth`: a plain object within the depth limit, its own keys and scalar values (key count,
 * budget, prototype keys, field-name encoding, numbers, strings); nested containers are queued on the walk.
 * With `fields`, copies the values except `ts` and `id`.
 */
function inspectObject(
  record: object,
  at: string,
  depth: number,
  limits: ValidateLimits,
  walk: Walk,
  fields: Record<string, unknown> | undefined,
): Refusal | undefined {
  if (depth > limits.maxDepth) return tooDeep(limits, at);
  if (!isPlainObject(record)) {
    return refuse('PARSE', `${where(at)} is ${describeType(record)}, which JSON cannot carry`, at);
  }
  const maxKeys = limits.maxKeys;
  let count = 0;
  // for-in rather than Object.keys: V8 then reads the values through the object's enum cache, about
  // twice as fast on a small reading; the own-property test keeps it to the keys Object.keys lists.
  for (const key in record) {
    if (!Object.prototype.hasOwnProperty.call(record, key)) continue;
    if (++count > maxKeys) {
      const total = Object.keys(record).length;
      return refuse(
        'TOO_LARGE',
        `${where(at)} has ${total} properties, more than the limit of ${maxKeys}`,
        at,
        { limit: maxKeys },
      );
    }
    const child = record[key];
    if (key === '__proto__' || (key === 'constructor' && isPrototypeCarrier(child))) {
      return refuse(
        'FORBIDDEN_KEY',
        `field name "${key}" is not allowed (it could change object prototypes downstream)`,
        at + pointerSegment(key),
      );
    }
    if (!isWellFormed(key)) {
      return refuse(
        'ENCODING',
        `a field name in ${where(at)} contains an unpaired UTF-16 surrogate, not valid Unicode`,
        at + pointerSegment(key),
      );
    }
    const problem = checkScalar(child, at, key);
    if (problem) return problem;
    if (fields !== undefined && key !== 'ts' && key !== 'id') fields[key] = child;
    if (typeof child === 'object' && child !== null) {
      (walk.stack ??= []).push({ value: child, depth: depth + 1, pointer: at + pointerSegment(key) });
    }
  }
  if ((walk.budget -= count) < 0) return overBudget(limits, at);
  return undefined;
}

/** The containers below the root, depth first from the walk's queue: no recursion, however deep. */
function inspectNested(limits: ValidateLimits, walk: Walk): Refusal | undefined {
  const stack = walk.stack;
  if (stack === undefined) return undefined;
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const { value, depth, pointer: at } = next;
    if (Array.isArray(value)) {
      if (depth > limits.maxDepth) return tooDeep(limits, at);
      if (value.length > limits.maxArrayLength) {
        return refuse(
          'TOO_LARGE',
          `${where(at)} has ${value.length} elements, more than the limit of ${limits.maxArrayLength}`,
          at,
          { limit: limits.maxArrayLength },
        );
      }
      if ((walk.budget -= value.length) < 0) return overBudget(limits, at);
      for (let i = 0; i < value.length; i++) {
        const child: unknown = value[i];
        const problem = checkScalar(child, at, i);
        if (problem) return problem;
        if (typeof child === 'object' && child !== null) {
          stack.push({ value: child, depth: depth + 1, pointer: at + pointerSegment(i) });
        }
      }
    } else {
      const problem = inspectObject(value, at, depth, limits, walk, undefined);
      if (problem) return problem;
    }
  }
  return undefined;
}

function tooDeep(limits: ValidateLimits, at: string): Refusal {
  return refuse('TOO_DEEP', `${where(at)} nests deeper than ${limits.maxDepth} levels`, at, {
    limit: limits.maxDepth,
  });
}

function checkScalar(value: unknown, at: string, key: string | number): Refusal | undefined {
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) {
        const p = at + pointerSegment(key);
        return refuse('NUMBER', `${where(p)} is ${value}, not a finite number`, p);
      }
      if (value > Number.MAX_SAFE_INTEGER || value < -Number.MAX_SAFE_INTEGER) {
        const p = at + pointerSegment(key);
        return refuse(
          'NUMBER',
          `${where(p)} is ${value}, beyond 2^53 where numbers lose precision; send it as a string`,
          p,
        );
      }
      return undefined;
    case 'string':
      if (!isWellFormed(value)) {
        const p = at + pointerSegment(key);
        return refuse('ENCODING', `${where(p)} contains an unpaired UTF-16 surrogate, not valid Unicode`, p);
      }
      return undefined;
    case 'boolean':
    case 'object':
      return undefined;
    case 'bigint': {
      const p = at + pointerSegment(key);
      return refuse('NUMBER', `${where(p)} is a BigInt, which JSON cannot carry; send it as a string`, p);
    }
    default: {
      const p = at + pointerSegment(key);
      return refuse('PARSE', `${where(p)} is ${describeType(value)}, which JSON cannot carry`, p);
    }
  }
}

/** No unpaired surrogates: the string survives UTF-8 (storage, MQTT, HTTP) byte-exact. Native in Node 20. */
function isWellFormed(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function isPrototypeCarrier(value: unknown): boolean {
  return (
    typeof value === 'object' && value !== null && Object.prototype.hasOwnProperty.call(value, 'prototype')
  );
}

export function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (Buffer.isBuffer(value)) return 'a Buffer';
  if (typeof value === 'object') {
    // Typed as always there, but an object made by Object.create(null) has no constructor.
    const name: unknown = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return `an object of class ${typeof name === 'string' ? name : 'unknown'}`;
  }
  return `a ${typeof value}`;
}

/** "the reading" or "field temperature" / "field a/b/0" for messages. */
export function where(pointer: string): string {
  return pointer === '' ? 'the reading' : `field ${fieldName(pointer)}`;
}

/** A pointer as a person reads it: `/a/b~1c/0` -> `a.b/c[0]`. */
export function fieldName(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`))
    .join('');
}

function overBudget(limits: ValidateLimits, at: string): Refusal {
  return refuse('TOO_LARGE', `the reading holds more than ${limits.maxBytes} values`, at, {
    limit: limits.maxBytes,
  });
}

function refuse(
  code: Refusal['code'],
  reason: string,
  path: string,
  extra?: Record<string, unknown>,
): Refusal {
  return { code, reason, details: { path, ...extra } };
}
