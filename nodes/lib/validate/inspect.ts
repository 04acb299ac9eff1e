import type { Refusal, ValidateLimits } from './options';

interface Pending {
  value: unknown;
  depth: number;
  pointer: string;
}

/** JSON Pointer (RFC 6901) segment for one key or index. */
export function pointerSegment(key: string | number): string {
  return typeof key === 'number' ? `/${key}` : `/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
}

/**
 * Checks one reading's structure without recursion: depth, keys per object, array lengths, a budget of
 * values (so a shared sub-object cannot make an object payload explode), prototype-poisoning keys, numbers
 * JSON cannot carry faithfully and strings that are not valid Unicode. Returns the first problem.
 * `depth` is the nesting level of `root` itself (1 for a single reading, 2 inside a batch array).
 * With `fields`, the root's properties except the reserved `ts` and `id` are copied into it in the same pass.
 */
export function inspectReading(
  root: unknown,
  limits: ValidateLimits,
  depth: number,
  fields?: Record<string, unknown>,
): Refusal | undefined {
  // Flat readings (the common case) never allocate the stack: only nested containers are queued.
  let stack: Pending[] | undefined;
  let budget = limits.maxBytes;
  let value = root;
  let level = depth;
  let at = '';
  for (;;) {
    if (level > limits.maxDepth) {
      return refuse('TOO_DEEP', `${where(at)} nests deeper than ${limits.maxDepth} levels`, at, {
        limit: limits.maxDepth,
      });
    }
    if (Array.isArray(value)) {
      if (value.length > limits.maxArrayLength) {
        return refuse(
          'TOO_LARGE',
          `${where(at)} has ${value.length} elements, more than the limit of ${limits.maxArrayLength}`,
          at,
          { limit: limits.maxArrayLength },
        );
      }
      if ((budget -= value.length) < 0) return overBudget(limits, at);
      for (let i = 0; i < value.length; i++) {
        const problem = checkScalar(value[i], at, i);
        if (problem) return problem;
        if (typeof value[i] === 'object' && value[i] !== null) {
          (stack ??= []).push({ value: value[i], depth: level + 1, pointer: at + pointerSegment(i) });
        }
      }
    } else {
      if (!isPlainObject(value)) {
        return refuse('PARSE', `${where(at)} is ${describeType(value)}, which JSON cannot carry`, at);
      }
      const record = value;
      const keys = Object.keys(record);
      if (keys.length > limits.maxKeys) {
        return refuse(
          'TOO_LARGE',
          `${where(at)} has ${keys.length} properties, more than the limit of ${limits.maxKeys}`,
          at,
          { limit: limits.maxKeys },
        );
      }
      if ((budget -= keys.length) < 0) return overBudget(limits, at);
      for (const key of keys) {
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
        if (fields !== undefined && record === root && key !== 'ts' && key !== 'id') fields[key] = child;
        if (typeof child === 'object' && child !== null) {
          (stack ??= []).push({ value: child, depth: level + 1, pointer: at + pointerSegment(key) });
        }
      }
    }
    const next = stack?.pop();
    if (!next) return undefined;
    ({ value, depth: level, pointer: at } = next);
  }
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
  if (typeof value === 'object') return `an object of class ${value.constructor?.name ?? 'unknown'}`;
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
