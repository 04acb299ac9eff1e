/** The range a number setting of a node's edit dialog must be in; outside it (or not a number) the fallback applies. */
export interface NumberRange<F> {
  /** What an empty, non-numeric or out-of-range value means. */
  fallback: F;
  /** Smallest accepted value (inclusive). */
  min?: number;
  /** Accepted values must be greater than this (exclusive): `above: 0` for "a positive number". */
  above?: number;
  /** Largest accepted value (inclusive). */
  max?: number;
  /** Whole numbers only: a fraction is rounded down (the dialog's number fields take any number). */
  integer?: boolean;
}

/**
 * A number setting from a node's config (a number, or the text of a number field, possibly empty), within
 * `range`, or `range.fallback`. The one parser for every node's number settings, so that "empty" and "0" and
 * "not a number" mean the same in every node.
 */
export function numberSetting<F = number>(value: unknown, range: NumberRange<F>): number | F {
  let n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && value.trim() !== ''
        ? Number(value)
        : NaN;
  if (!Number.isFinite(n)) return range.fallback;
  if (range.integer) n = Math.floor(n);
  if (range.min !== undefined && n < range.min) return range.fallback;
  if (range.above !== undefined && n <= range.above) return range.fallback;
  if (range.max !== undefined && n > range.max) return range.fallback;
  return n;
}
