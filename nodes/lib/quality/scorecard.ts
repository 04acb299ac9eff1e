/**
 * The per-device scorecard: what share of a device's values each check flagged, how complete its readings are.
 * Read from the device records' counters (state.ts), so it costs nothing on the hot path.
 */
import {
  C_FIELD_VALUES,
  C_FILLED,
  C_FLAT,
  C_GAP_SLOTS,
  C_IMPUTED,
  C_MISSING,
  C_ORDER,
  C_RANGE,
  C_RATE,
  C_READINGS,
  C_REJECTED,
  C_SPIKE,
  D_FIRST_TS,
  D_LAST_TS,
  DEVICE_COUNTERS,
  DEVICE_DOUBLES,
  type QualityStateStore,
} from './state';

export interface DeviceScorecard {
  device: string;
  readings: number;
  values: number;
  /** Percent of values flagged by each check. */
  flaggedPct: Record<'range' | 'spike' | 'rate' | 'flatline' | 'order', number>;
  missingPct: number;
  imputedPct: number;
  rejected: number;
  gapSlots: number;
  filled: number;
  /** Readings received / readings expected at the configured interval; null without one. */
  completeness: number | null;
  firstTs: number | null;
  lastTs: number | null;
}

export const round2 = (x: number): number => Math.round(x * 100) / 100;

const pct = (x: number, of: number): number => (of > 0 ? round2((100 * x) / of) : 0);

function card(
  store: QualityStateStore,
  expectedIntervalMs: number,
  id: string,
  dev: number,
): DeviceScorecard {
  const d = store.deviceF64;
  const c = store.deviceU32;
  const b = dev * DEVICE_DOUBLES;
  const cb = dev * DEVICE_COUNTERS;
  const values = c[cb + C_FIELD_VALUES];
  const missing = c[cb + C_MISSING];
  const readings = c[cb + C_READINGS];
  const gaps = c[cb + C_GAP_SLOTS];
  return {
    device: id,
    readings,
    values,
    flaggedPct: {
      range: pct(c[cb + C_RANGE], values),
      spike: pct(c[cb + C_SPIKE], values),
      rate: pct(c[cb + C_RATE], values),
      flatline: pct(c[cb + C_FLAT], values),
      order: pct(c[cb + C_ORDER], values),
    },
    missingPct: pct(missing, values + missing),
    imputedPct: pct(c[cb + C_IMPUTED], values + missing),
    rejected: c[cb + C_REJECTED],
    gapSlots: gaps,
    filled: c[cb + C_FILLED],
    completeness: expectedIntervalMs > 0 && readings > 0 ? round2(readings / (readings + gaps)) : null,
    firstTs: Number.isNaN(d[b + D_FIRST_TS]) ? null : d[b + D_FIRST_TS],
    lastTs: d[b + D_LAST_TS] === -Infinity ? null : d[b + D_LAST_TS],
  };
}

/** Scorecards of every device in `store`, or of `deviceId` alone (none when it has no record). */
export function scorecards(
  store: QualityStateStore,
  expectedIntervalMs: number,
  deviceId?: string,
): DeviceScorecard[] {
  const cards: DeviceScorecard[] = [];
  if (deviceId !== undefined) {
    const dev = store.device(deviceId, false);
    if (dev >= 0) cards.push(card(store, expectedIntervalMs, deviceId, dev));
  } else store.forEachDevice((id, dev) => cards.push(card(store, expectedIntervalMs, id, dev)));
  return cards;
}
