/**
 * A batch (docs/architecture.md, message contract: a device's array of readings in one message, or a batch of
 * many devices' readings) carries parallel
 * arrays: `payload[i]`, `timestamp[i]`, `messageId[i]` (iotb-validate), `quality[i]` (iotb-quality), and
 * `device[i]`, `ackId[i]` when the readings come from many devices or publications. A message with one reading
 * carries plain values. This reads element `index` of such a property either way.
 */
export function batchElement(value: unknown, index: number): unknown {
  return Array.isArray(value) ? (value as unknown[])[index] : value;
}

/** The properties of a message that are parallel arrays in a batch. */
const PARALLEL = ['payload', 'device', 'ackId', 'timestamp', 'messageId', 'quality'];

/**
 * Element `index` of a batch as a message of its own (a refused reading leaving alone, a reading sent on
 * singly): the batch message's other properties, copied by `clone` (the node's `RED.util.cloneMessage`, which
 * keeps an HTTP request's `req`/`res`, so the refusal can still be answered), and element `index` of each
 * parallel property. The parallel arrays themselves are not copied.
 */
export function elementMessage(
  msg: Record<string, unknown>,
  index: number,
  clone: (m: Record<string, unknown>) => Record<string, unknown>,
): Record<string, unknown> {
  const rest: Record<string, unknown> = {};
  for (const key of Object.keys(msg)) if (!PARALLEL.includes(key)) rest[key] = msg[key];
  const out = clone(rest);
  for (const key of PARALLEL) {
    const value = batchElement(msg[key], index);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
