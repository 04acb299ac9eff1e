/**
 * Quality flags: what iotb-quality says about a field that is not plainly good (`msg.quality`, docs/quality.md).
 * Codes are the QARTOD flag values (1 pass, 3 suspect, 4 fail, 9 missing); the OPC UA mapping is for
 * gateways that forward our readings to OPC UA clients (docs/quality.md explains it).
 */

export type Flag = 'suspect' | 'bad' | 'imputed' | 'missing';
export type QartodCode = 1 | 3 | 4 | 9;
export type CheckName = 'range' | 'spike' | 'rate' | 'flatline' | 'order' | 'missing' | 'gap';

export interface FieldQuality {
  flag: Flag;
  /** QARTOD: 3 a check found it suspect, 4 it failed (gross range), 9 the value was missing. */
  code: QartodCode;
  /** The check that decided the flag (the most severe one when several fired). */
  check: CheckName;
  /** Every check that fired, when more than one did. */
  checks?: CheckName[];
  /** How the value in `msg.payload` was produced when it is not the raw one. */
  method?: 'median' | 'locf' | 'linear' | 'mean' | 'interpolated';
  /** The value as it arrived; null when it was missing. Always kept. */
  raw: number | null;
  /** A sentence a person understands. */
  reason: string;
}

/** OPC UA StatusCode (Part 4/8) a reading with this quality would carry. */
export function opcUaStatus(q: FieldQuality | undefined): { name: string; code: number } {
  if (!q) return { name: 'Good', code: 0x00000000 };
  switch (q.flag) {
    case 'suspect':
      // Outside the suspect span is what EngineeringUnitsExceeded means; spike, rate, flat line and order
      // have no sub-code of their own: plain Uncertain, the reason says which.
      return q.check === 'range'
        ? { name: 'UncertainEngineeringUnitsExceeded', code: 0x40940000 }
        : { name: 'Uncertain', code: 0x40000000 };
    case 'bad':
      return { name: 'BadOutOfRange', code: 0x803c0000 };
    case 'imputed':
      return q.method === 'locf'
        ? { name: 'UncertainLastUsableValue', code: 0x40900000 }
        : { name: 'UncertainSubstituteValue', code: 0x40910000 };
    case 'missing':
      return { name: 'BadNoData', code: 0x809b0000 };
  }
}
