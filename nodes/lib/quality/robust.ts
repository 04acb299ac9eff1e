/**
 * Robust statistics over the small windows of the Hampel identifier. The caller passes a scratch buffer that
 * lives as long as the engine, so a call allocates nothing; windows are tiny (default 7), so insertion sort
 * beats anything cleverer.
 */

/** Consistency constant: 1.4826 · MAD estimates σ for normally distributed data. */
const MAD_TO_SIGMA = 1.4826;
/** sqrt(π/2): mean absolute deviation → σ for normal data; the fallback scale when the MAD is 0. */
const MEAN_AD_TO_SIGMA = 1.2533;

/** Sorts scratch[0..n) in place, ascending. */
function insertionSort(scratch: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) {
    const v = scratch[i];
    let j = i - 1;
    while (j >= 0 && scratch[j] > v) {
      scratch[j + 1] = scratch[j];
      j--;
    }
    scratch[j + 1] = v;
  }
}

function sortedMedian(scratch: Float64Array, n: number): number {
  const mid = n >> 1;
  return n & 1 ? scratch[mid] : (scratch[mid - 1] + scratch[mid]) / 2;
}

/**
 * Median of ring[base .. base+n) (the ring's order does not matter). Uses scratch[0..n); n >= 1.
 */
export function medianOf(ring: Float64Array, base: number, n: number, scratch: Float64Array): number {
  for (let i = 0; i < n; i++) scratch[i] = ring[base + i];
  insertionSort(scratch, n);
  return sortedMedian(scratch, n);
}

/**
 * Weighted mean of values[0..n), value j weighing weights[j], without outliers: up to two times, the value farthest
 * from the mean of those still in it is dropped when it lies more than `limit` from that mean. With weights that
 * fall with age this is a level that follows a wandering signal sooner than the median; a spike (or one high and
 * one low) among the values counts for nothing, and when there is none every value counts (always dropping the
 * lowest and the highest throws away a third of the window's weight, and the level carries more noise).
 */
export function weightedMeanWithoutOutliers(
  values: Float64Array,
  n: number,
  weights: Float64Array,
  limit: number,
): number {
  // Deviations from the newest value: equal values give exactly that value back, with no rounding.
  const ref = values[0];
  let sw = 0;
  let sx = 0;
  let lo = 0;
  let hi = 0;
  for (let j = 0; j < n; j++) {
    const x = values[j];
    sw += weights[j];
    sx += weights[j] * (x - ref);
    if (x < values[lo]) lo = j;
    if (x > values[hi]) hi = j;
  }
  if (n < 3) return ref + sx / sw;
  // The value farthest from the mean is the lowest or the highest; mostly it is within the limit: one pass.
  let mean = ref + sx / sw;
  let far = mean - values[lo] > values[hi] - mean ? lo : hi;
  if (!(Math.abs(values[far] - mean) > limit)) return mean;
  sw -= weights[far];
  sx -= weights[far] * (values[far] - ref);
  if (n < 4) return ref + sx / sw;
  mean = ref + sx / sw;
  const dropped = far;
  far = -1;
  let farthest = limit;
  for (let j = 0; j < n; j++) {
    const d = Math.abs(values[j] - mean);
    if (d > farthest && j !== dropped) {
      far = j;
      farthest = d;
    }
  }
  if (far >= 0) {
    sw -= weights[far];
    sx -= weights[far] * (values[far] - ref);
  }
  return ref + sx / sw;
}

/** Mean of ring[base .. base+n); n >= 1. */
export function meanOf(ring: Float64Array, base: number, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += ring[base + i];
  return sum / n;
}

/**
 * Robust scale (σ estimate) of ring[base .. base+n) around `median`: 1.4826 · MAD, or, when more than half
 * the window is identical (MAD = 0), 1.2533 · mean absolute deviation, so one odd value among repeats still
 * gets a finite, meaningful threshold. 0 only when every value equals the median.
 */
export function robustScale(
  ring: Float64Array,
  base: number,
  n: number,
  median: number,
  scratch: Float64Array,
): number {
  let sumAbs = 0;
  for (let i = 0; i < n; i++) {
    const d = Math.abs(ring[base + i] - median);
    scratch[i] = d;
    sumAbs += d;
  }
  insertionSort(scratch, n);
  const mad = sortedMedian(scratch, n);
  return mad > 0 ? MAD_TO_SIGMA * mad : (MEAN_AD_TO_SIGMA * sumAbs) / n;
}
