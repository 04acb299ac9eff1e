/**
 * Seeded synthetic sensor readings for the device simulator: a daily temperature cycle and humidity with
 * Gaussian noise, plus injected faults (spikes, stuck periods, dropouts, missing values) so that the
 * validation and quality stages have something to find. The same seed gives the same sequence.
 */

/** mulberry32: a tiny seeded PRNG with a full 2^32 period; enough for test signals, not for secrets. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal variate (Box-Muller) from a uniform source. */
export function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export interface FaultRates {
  /** Probability per reading of a spike (a value far off the signal). */
  spike: number;
  /** Probability per reading that the sensor sticks at its value for `stuckLength` readings. */
  stuck: number;
  /** Probability per reading that the device goes silent for `dropoutLength` readings. */
  dropout: number;
  /** Probability per reading that a field is sent as null. */
  missing: number;
  stuckLength: number;
  dropoutLength: number;
}

export const DEFAULT_FAULTS: FaultRates = {
  spike: 0.01,
  stuck: 0.002,
  dropout: 0.002,
  missing: 0.005,
  stuckLength: 20,
  dropoutLength: 10,
};

export type SimulatedReading = { ts: number; temperature: number | null; humidity: number | null };

/** One device's signal; `next(ts)` returns the reading at `ts`, or undefined while the device is silent. */
export class SimulatedSensor {
  private readonly random: () => number;
  private readonly phase: number;
  private stuckLeft = 0;
  private stuckValue = 0;
  private silentLeft = 0;

  constructor(
    seed: number,
    private readonly faults: FaultRates = DEFAULT_FAULTS,
  ) {
    this.random = seededRandom(seed);
    this.phase = this.random() * 2 * Math.PI;
  }

  next(ts: number): SimulatedReading | undefined {
    const r = this.random;
    if (this.silentLeft > 0) {
      this.silentLeft--;
      return undefined;
    }
    if (r() < this.faults.dropout) {
      this.silentLeft = this.faults.dropoutLength - 1;
      return undefined;
    }
    const day = (2 * Math.PI * (ts % 86_400_000)) / 86_400_000 + this.phase;
    let temperature = 21 + 4 * Math.sin(day) + 0.1 * gaussian(r);
    const humidity = 50 - 10 * Math.sin(day) + 0.5 * gaussian(r);
    if (this.stuckLeft > 0) {
      this.stuckLeft--;
      temperature = this.stuckValue;
    } else if (r() < this.faults.stuck) {
      this.stuckLeft = this.faults.stuckLength - 1;
      this.stuckValue = temperature;
    } else if (r() < this.faults.spike) {
      temperature += (r() < 0.5 ? -1 : 1) * (8 + 10 * r());
    }
    return {
      ts,
      temperature: r() < this.faults.missing ? null : round(temperature, 2),
      humidity: r() < this.faults.missing ? null : round(humidity, 1),
    };
  }
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
