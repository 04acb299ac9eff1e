/**
 * JSON documents as the twin keeps them: plain objects of JSON values, changed by RFC 7386 merge patches.
 * Documents are never changed in place: a merge copies the objects on the changed paths and shares the rest,
 * so a view handed out earlier keeps showing the state it was taken from.
 */

export type JsonObject = Record<string, unknown>;

/** Why a value is not a JSON document we accept; undefined when it is fine. */
export interface DocLimits {
  /** Largest serialized document (UTF-8 bytes). */
  maxBytes: number;
  /** Deepest object/array nesting (the document itself is depth 1). */
  maxDepth: number;
}

/** Keys that would reach an object's prototype when assigned. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function isPlainObject(v: unknown): v is JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Checks that `value` holds only JSON values (no undefined, functions, Dates, NaN, cycles) and nests at most
 * `maxDepth` deep; returns the reason it does not, or undefined.
 */
export function jsonProblem(value: unknown, maxDepth: number, path = '', depth = 1): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : `${path || 'value'} is not a finite number`;
    case 'object': {
      if (value === null) return undefined;
      if (depth > maxDepth) return `${path || 'value'} nests deeper than ${maxDepth} levels`;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const p = jsonProblem(value[i], maxDepth, `${path}[${i}]`, depth + 1);
          if (p) return p;
        }
        return undefined;
      }
      if (!isPlainObject(value)) return `${path || 'value'} is not a plain JSON object`;
      for (const key of Object.keys(value)) {
        if (FORBIDDEN_KEYS.has(key)) return `key "${key}" is not allowed`;
        const p = jsonProblem(value[key], maxDepth, path ? `${path}.${key}` : key, depth + 1);
        if (p) return p;
      }
      return undefined;
    }
    default:
      return `${path || 'value'} is a ${typeof value}, not a JSON value`;
  }
}

/** RFC 7386: null removes a key, an object merges into an object, anything else replaces. */
export function applyMergePatch(target: JsonObject, patch: JsonObject): JsonObject {
  let out: JsonObject | undefined;
  for (const key of Object.keys(patch)) {
    const p = patch[key];
    const current = target[key];
    let next: unknown;
    if (p === null) {
      if (!(key in target)) continue;
      out ??= { ...target };
      Reflect.deleteProperty(out, key);
      continue;
    }
    if (isPlainObject(p)) next = applyMergePatch(isPlainObject(current) ? current : {}, p);
    else next = p;
    if (next === current || jsonEqual(next, current)) continue;
    out ??= { ...target };
    out[key] = next;
  }
  return out ?? target;
}

/** Deep equality of JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual((a as JsonObject)[k], (b as JsonObject)[k])) return false;
  }
  return true;
}

/**
 * What `desired` asks for that `reported` does not show: desired keys whose value differs, recursing into
 * objects on both sides so that only the differing leaves appear (like AWS IoT's shadow delta).
 */
export function deltaOf(desired: JsonObject, reported: JsonObject): JsonObject {
  const delta: JsonObject = {};
  for (const key of Object.keys(desired)) {
    const d = desired[key];
    const r = reported[key];
    if (isPlainObject(d) && isPlainObject(r)) {
      const sub = deltaOf(d, r);
      if (Object.keys(sub).length > 0) delta[key] = sub;
    } else if (!jsonEqual(d, r)) delta[key] = d;
  }
  return delta;
}

/** The top-level keys whose value differs between two documents (added, removed or changed). */
export function changedKeys(before: JsonObject, after: JsonObject): string[] {
  const keys: string[] = [];
  for (const k of Object.keys(after)) if (!jsonEqual(before[k], after[k])) keys.push(k);
  for (const k of Object.keys(before)) if (!(k in after)) keys.push(k);
  return keys;
}

/** The value at a dotted path (`firmware.version`), undefined when a step is missing. */
export function valueAt(doc: unknown, path: readonly string[]): unknown {
  let v = doc;
  for (const step of path) {
    if (!isPlainObject(v)) return undefined;
    v = v[step];
  }
  return v;
}
