import { isUtf8 } from 'node:buffer';
import type { Refusal, ValidateLimits } from './options';

export type ParseResult =
  | {
      ok: true;
      value: unknown;
      /** The text `value` was parsed from; undefined for an object payload, which belongs to the caller. */
      source: string | undefined;
    }
  | { ok: false; refusal: Refusal };

const OPEN_SQUARE = 0x5b;
const OPEN_CURLY = 0x7b;
const CLOSE_SQUARE = 0x5d;
const CLOSE_CURLY = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Texts longer than this are scanned for their depth before JSON.parse. Shorter ones are parsed first (V8's
 * JSON.parse is iterative, and a text this short is little work) and their depth is checked by the
 * structure walk, so a small reading pays no scan.
 */
const DEPTH_SCAN_FROM = 1024;

/**
 * Turns `msg.payload` (Buffer, string or already-parsed value) into a value, refusing anything over the size
 * or depth limits before deep work: a 100,000-deep array costs one linear scan, never a recursion.
 * Objects are passed through as they are; `inspectReading` checks their structure.
 */
export function parsePayload(payload: unknown, limits: ValidateLimits): ParseResult {
  let text: string;
  if (typeof payload === 'string') {
    // UTF-8 needs at most 3 bytes per UTF-16 unit: only count bytes when the length alone cannot decide.
    if (payload.length > limits.maxBytes) return tooLarge(Buffer.byteLength(payload), limits.maxBytes);
    if (payload.length * 3 > limits.maxBytes) {
      const bytes = Buffer.byteLength(payload);
      if (bytes > limits.maxBytes) return tooLarge(bytes, limits.maxBytes);
    }
    text = payload;
  } else if (Buffer.isBuffer(payload)) {
    if (payload.length > limits.maxBytes) return tooLarge(payload.length, limits.maxBytes);
    text = payload.toString('utf8');
    // The decoder turns invalid bytes into U+FFFD: only a text holding one needs the strict check.
    if (text.includes('\uFFFD') && !isUtf8(payload)) {
      const position = firstInvalidUtf8(payload);
      return refuse('PARSE', `payload is not valid UTF-8 (bad byte at offset ${position})`, { position });
    }
  } else if (payload === undefined || payload === null) {
    return refuse('PARSE', 'payload is empty');
  } else {
    return { ok: true, value: payload, source: undefined };
  }

  if (text.length > DEPTH_SCAN_FROM) {
    const deepAt = exceedsDepth(text, limits.maxDepth);
    if (deepAt >= 0) {
      return refuse(
        'TOO_DEEP',
        `payload nests deeper than ${limits.maxDepth} levels (at position ${deepAt})`,
        {
          limit: limits.maxDepth,
          position: deepAt,
        },
      );
    }
  }
  try {
    return { ok: true, value: JSON.parse(text), source: text };
  } catch (err) {
    return refuse('PARSE', describeJsonError(text, err), jsonErrorDetails(text));
  }
}

/**
 * Position of the first bracket that opens level `maxDepth + 1`, or -1. Counting brackets is cheap; the
 * string-aware scan only runs when the count alone cannot rule the limit out.
 */
export function exceedsDepth(text: string, maxDepth: number): number {
  let opens = 0;
  for (let i = text.indexOf('{'); i !== -1 && opens <= maxDepth; i = text.indexOf('{', i + 1)) opens++;
  for (let i = text.indexOf('['); i !== -1 && opens <= maxDepth; i = text.indexOf('[', i + 1)) opens++;
  if (opens <= maxDepth) return -1;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_SQUARE || c === OPEN_CURLY) {
      if (++depth > maxDepth) return i;
    } else if (c === CLOSE_SQUARE || c === CLOSE_CURLY) {
      depth--;
    }
  }
  return -1;
}

function describeJsonError(text: string, err: unknown): string {
  // V8 echoes the input in some messages ('Unexpected token 'x', "<input>" is not valid JSON'): keep the
  // "what", drop the echo and V8's own position, and say where in line/column terms.
  const raw = err instanceof Error ? err.message : String(err);
  const what = raw
    .replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '')
    .replace(/ in JSON at position \d+.*$/s, '')
    .replace(/ of JSON input$/, ' of input');
  const position = locateJsonError(text);
  if (position < 0) return `payload is not valid JSON: ${what}`;
  const { line, column } = lineAndColumn(text, position);
  return `payload is not valid JSON: ${what} at line ${line} column ${column} (position ${position})`;
}

function jsonErrorDetails(text: string): Record<string, unknown> | undefined {
  const position = locateJsonError(text);
  return position < 0 ? undefined : { position, ...lineAndColumn(text, position) };
}

function lineAndColumn(text: string, position: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < position; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: position - lineStart + 1 };
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

function skipWhitespace(text: string, i: number): number {
  WHITESPACE.lastIndex = i;
  WHITESPACE.test(text);
  return WHITESPACE.lastIndex;
}

/** End of the string literal starting at `i` (just after the closing quote), or -(error position) - 1. */
function scanString(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === QUOTE) return j + 1;
    if (c < 0x20) return -j - 1;
    if (c === BACKSLASH) {
      const e = text[j + 1] as string | undefined; // undefined past the end
      if (e === 'u') {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6))) return -j - 1;
        j += 5;
      } else if (e === undefined || !'"\\/bfnrt'.includes(e)) {
        return -j - 1;
      } else {
        j++;
      }
    }
  }
  return -text.length - 1;
}

/**
 * Where the first JSON syntax error is (a character offset), or -1 when there is none. Runs only after
 * JSON.parse failed, to say where; iterative, so depth cannot hurt it (and depth was limited before).
 */
export function locateJsonError(text: string): number {
  const stack: boolean[] = []; // true = object
  let state: 'value' | 'valueOrClose' | 'key' | 'keyOrClose' | 'after' = 'value';
  let i = skipWhitespace(text, 0);
  for (;;) {
    if (state === 'value' || state === 'valueOrClose') {
      const c = text[i];
      if (state === 'valueOrClose' && c === ']') {
        stack.pop();
        i++;
      } else if (c === '[' || c === '{') {
        stack.push(c === '{');
        i = skipWhitespace(text, i + 1);
        state = c === '{' ? 'keyOrClose' : 'valueOrClose';
        continue;
      } else if (c === '"') {
        const end = scanString(text, i);
        if (end < 0) return -end - 1;
        i = end;
      } else if (c === 't' || c === 'f' || c === 'n') {
        const word = c === 't' ? 'true' : c === 'f' ? 'false' : 'null';
        if (!text.startsWith(word, i)) return i;
        i += word.length;
      } else {
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) return i;
        i = NUMBER.lastIndex;
      }
      i = skipWhitespace(text, i);
      state = 'after';
    } else if (state === 'key' || state === 'keyOrClose') {
      if (state === 'keyOrClose' && text[i] === '}') {
        stack.pop();
        i = skipWhitespace(text, i + 1);
        state = 'after';
        continue;
      }
      if (text[i] !== '"') return i;
      const end = scanString(text, i);
      if (end < 0) return -end - 1;
      i = skipWhitespace(text, end);
      if (text[i] !== ':') return i;
      i = skipWhitespace(text, i + 1);
      state = 'value';
    } else {
      if (stack.length === 0) return i < text.length ? i : -1;
      const inObject = stack[stack.length - 1];
      const c = text[i];
      if (c === ',') {
        i = skipWhitespace(text, i + 1);
        state = inObject ? 'key' : 'value';
      } else if (c === (inObject ? '}' : ']')) {
        stack.pop();
        i = skipWhitespace(text, i + 1);
      } else {
        return i;
      }
    }
  }
}

function firstInvalidUtf8(buf: Buffer): number {
  // Error path only: binary search for the longest prefix a strict streaming decoder accepts.
  let lo = 0;
  let hi = buf.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid - 1;
    }
  }
  return lo;
}

function tooLarge(bytes: number, limit: number): ParseResult {
  return refuse('TOO_LARGE', `payload is ${bytes} bytes, more than the limit of ${limit}`, {
    bytes,
    limit,
  });
}

function refuse(code: Refusal['code'], reason: string, details?: Record<string, unknown>): ParseResult {
  return { ok: false, refusal: details ? { code, reason, details } : { code, reason } };
}
