/**
 * A batch (a device's array of readings in one message; docs/architecture.md, message contract) carries parallel arrays: `payload[i]`,
 * `timestamp[i]`, `messageId[i]` (iotb-validate) and `quality[i]` (iotb-quality). A message with one reading
 * carries plain values. This reads element `index` of such a property either way.
 */
export function batchElement(value: unknown, index: number): unknown {
  return Array.isArray(value) ? (value as unknown[])[index] : value;
}
