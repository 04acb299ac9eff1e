import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { createHash } from 'node:crypto';
import { fieldName, pointerSegment } from './inspect';
import type { Refusal } from './options';
import { locateJsonError } from './parse';

/** What to do with properties the schema does not name. */
export type UnknownProperties = 'schema' | 'strip' | 'reject';

export interface SchemaOptions {
  /** Coerce "21.5" to 21.5 etc. where the schema says number/integer/boolean (ajv `coerceTypes`). */
  coerce: boolean;
  /** Fill in `default` values from the schema (ajv `useDefaults`). */
  useDefaults: boolean;
  /**
   * 'schema': as the schema says; 'strip': drop properties not named in `properties` (ajv
   * `removeAdditional: "all"`); 'reject': refuse them (adds `unevaluatedProperties: false` at the root).
   */
  unknown: UnknownProperties;
  /** Report every violation instead of the first. Off by default: see docs/validation.md. */
  allErrors: boolean;
}

export const DEFAULT_SCHEMA_OPTIONS: Readonly<SchemaOptions> = Object.freeze({
  coerce: false,
  useDefaults: false,
  unknown: 'schema',
  allErrors: false,
});

/** At most this many violations are listed, even with allErrors. */
const MAX_REPORTED_ERRORS = 20;
/** Distinct compiled schemas kept process-wide (redeploys and nodes sharing a schema reuse them). */
const CACHE_SIZE = 256;

/** A compiled schema for one reading. */
export interface ReadingSchema {
  /** Validates (and, per options, coerces/fills/strips) `fields` in place; a refusal when it does not pass. */
  check(fields: Record<string, unknown>): Refusal | undefined;
  /** `check` may change `fields` (coercion, defaults or stripping is on). */
  readonly mutates: boolean;
}

/** The schema itself is unusable: bad JSON, not a schema, or ajv refuses to compile it. */
export class SchemaError extends Error {
  override readonly name = 'SchemaError';
}

const cache = new Map<string, ReadingSchema>();

/**
 * Compiles a JSON Schema 2020-12 (an object, or its JSON text) once; the same schema text with the same
 * options returns the cached validator. Throws SchemaError with a sentence saying what is wrong.
 */
export function compileReadingSchema(
  schema: unknown,
  options: SchemaOptions = DEFAULT_SCHEMA_OPTIONS,
): ReadingSchema {
  const source = typeof schema === 'string' ? parseSchemaText(schema) : schema;
  if (
    typeof source !== 'boolean' &&
    (typeof source !== 'object' || source === null || Array.isArray(source))
  ) {
    throw new SchemaError('a schema must be a JSON object (or true/false)');
  }
  let text: string;
  try {
    text = JSON.stringify(source);
  } catch (err) {
    throw new SchemaError(`the schema is not JSON: ${(err as Error).message}`);
  }
  const key = createHash('sha256')
    .update(`${options.coerce}|${options.useDefaults}|${options.unknown}|${options.allErrors}|${text}`)
    .digest('base64');
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const compiled = compile(JSON.parse(text) as object | boolean, options);
  cache.set(key, compiled);
  if (cache.size > CACHE_SIZE) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  return compiled;
}

function parseSchemaText(text: string): unknown {
  if (text.trim() === '') throw new SchemaError('the schema is empty');
  try {
    return JSON.parse(text);
  } catch (err) {
    const position = locateJsonError(text);
    const what = (err as Error).message
      .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '')
      .replace(/ in JSON at.*$/s, '');
    throw new SchemaError(
      `the schema is not valid JSON: ${what}${position >= 0 ? ` at position ${position}` : ''}`,
    );
  }
}

function compile(schema: object | boolean, options: SchemaOptions): ReadingSchema {
  // One ajv instance per schema: user schemas may reuse an $id across versions, and an instance keeps every
  // schema it compiled for its lifetime.
  const ajv = new Ajv2020({
    allErrors: options.allErrors,
    coerceTypes: options.coerce,
    useDefaults: options.useDefaults,
    removeAdditional: options.unknown === 'strip' ? 'all' : false,
    $data: false,
    strict: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
    allowUnionTypes: true,
    logger: false,
  });
  addFormats(ajv);
  const root =
    options.unknown === 'reject' &&
    typeof schema === 'object' &&
    !('unevaluatedProperties' in schema) &&
    !('additionalProperties' in schema)
      ? { ...schema, unevaluatedProperties: false }
      : schema;
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(root);
  } catch (err) {
    throw new SchemaError(
      `the schema is invalid: ${(err as Error).message.replace(/^schema is invalid: /, '')}`,
    );
  }
  return {
    mutates: options.coerce || options.useDefaults || options.unknown === 'strip',
    check(fields) {
      if (validate(fields)) return undefined;
      return describeViolations(validate.errors ?? [], fields);
    },
  };
}

export interface Violation {
  /** JSON Pointer to the offending value (or where a missing property belongs). */
  path: string;
  message: string;
  expected: unknown;
  actual?: unknown;
}

/** Turns ajv errors into `{ path, message, expected, actual }` and one sentence a person understands. */
export function describeViolations(errors: ErrorObject[], data: unknown): Refusal {
  const violations = errors.slice(0, MAX_REPORTED_ERRORS).map((e) => describeViolation(e, data));
  const more =
    errors.length > MAX_REPORTED_ERRORS ? ` (and ${errors.length - MAX_REPORTED_ERRORS} more)` : '';
  return {
    code: 'SCHEMA',
    reason: violations.map((v) => v.message).join('; ') + more,
    details: { violations },
  };
}

function describeViolation(e: ErrorObject, data: unknown): Violation {
  const p = e.params as Record<string, unknown>;
  let path = e.instancePath;
  const actual = valueAt(data, path);
  const name = label(path);
  const got = `(got ${show(actual)})`;
  switch (e.keyword) {
    case 'maximum':
    case 'minimum':
    case 'exclusiveMaximum':
    case 'exclusiveMinimum': {
      const expected = `${String(p.comparison)} ${String(p.limit)}`;
      return { path, message: `${name} must be ${expected} ${got}`, expected, actual };
    }
    case 'type':
      return {
        path,
        message: `${name} must be ${article(String(p.type))} ${got}`,
        expected: p.type,
        actual: summary(actual),
      };
    case 'required':
    case 'dependentRequired': {
      path += pointerSegment(String(p.missingProperty));
      const because = e.keyword === 'dependentRequired' ? ` when ${String(p.property)} is present` : '';
      return { path, message: `${label(path)} is required${because}`, expected: 'present' };
    }
    case 'additionalProperties':
    case 'unevaluatedProperties': {
      path += pointerSegment(String(p.additionalProperty ?? p.unevaluatedProperty));
      const value = valueAt(data, path);
      return {
        path,
        message: `${label(path)} is not a known field`,
        expected: 'absent',
        actual: summary(value),
      };
    }
    case 'enum':
      return {
        path,
        message: `${name} must be one of ${(p.allowedValues as unknown[]).map(show).join(', ')} ${got}`,
        expected: p.allowedValues,
        actual: summary(actual),
      };
    case 'const':
      return {
        path,
        message: `${name} must be ${show(p.allowedValue)} ${got}`,
        expected: p.allowedValue,
        actual,
      };
    case 'minLength':
    case 'maxLength': {
      const op = e.keyword === 'minLength' ? 'at least' : 'at most';
      // eslint-disable-next-line @typescript-eslint/no-misused-spread -- JSON Schema (and ajv) count code points
      const length = typeof actual === 'string' ? [...actual].length : undefined;
      return {
        path,
        message: `${name} must be ${op} ${String(p.limit)} characters long (got ${length ?? show(actual)})`,
        expected: `${e.keyword === 'minLength' ? '>=' : '<='} ${String(p.limit)} characters`,
        actual: summary(actual),
      };
    }
    case 'minItems':
    case 'maxItems':
    case 'minProperties':
    case 'maxProperties': {
      const op = e.keyword.startsWith('min') ? 'at least' : 'at most';
      const what = e.keyword.endsWith('Items') ? 'elements' : 'properties';
      const count = Array.isArray(actual)
        ? actual.length
        : actual && typeof actual === 'object'
          ? Object.keys(actual).length
          : 0;
      return {
        path,
        message: `${name} must have ${op} ${String(p.limit)} ${what} (got ${count})`,
        expected: `${op === 'at least' ? '>=' : '<='} ${String(p.limit)} ${what}`,
        actual: count,
      };
    }
    case 'pattern':
      return {
        path,
        message: `${name} must match the pattern ${String(p.pattern)} ${got}`,
        expected: `pattern ${String(p.pattern)}`,
        actual: summary(actual),
      };
    case 'format':
      return {
        path,
        message: `${name} must be a valid ${String(p.format)} ${got}`,
        expected: `format ${String(p.format)}`,
        actual: summary(actual),
      };
    case 'multipleOf':
      return {
        path,
        message: `${name} must be a multiple of ${String(p.multipleOf)} ${got}`,
        expected: `multiple of ${String(p.multipleOf)}`,
        actual,
      };
    default:
      return {
        path,
        message: `${name} ${e.message ?? 'is invalid'} ${got}`,
        expected: e.keyword,
        actual: summary(actual),
      };
  }
}

function label(pointer: string): string {
  return pointer === '' ? 'the reading' : fieldName(pointer);
}

function article(type: string): string {
  return type
    .split(',')
    .map((t) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`))
    .join(' or ');
}

function valueAt(data: unknown, pointer: string): unknown {
  let v = data;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof v !== 'object' || v === null || !Object.prototype.hasOwnProperty.call(v, seg))
      return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

const SHOW_MAX = 64;

/** A value as it appears in a sentence: JSON, long strings cut, objects and arrays named. */
function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  if (typeof value === 'string' && value.length > SHOW_MAX)
    return `${JSON.stringify(value.slice(0, SHOW_MAX))}…`;
  return JSON.stringify(value);
}

/** A value as it appears in details: scalars as they are (long strings cut), containers by kind. */
function summary(value: unknown): unknown {
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object' && value !== null) return 'object';
  if (typeof value === 'string' && value.length > 256) return `${value.slice(0, 256)}…`;
  return value;
}
