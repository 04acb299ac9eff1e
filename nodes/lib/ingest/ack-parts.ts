/** The slice of the ack ledger (ack-ledger.ts) that a node splitting a message needs. */
export interface AckRefs {
  addRefs(id: number, extra: number): void;
}

/**
 * One acknowledged publication (one ack id, not an array of them) became `parts` messages or batch elements
 * that each settle one reference: the ledger gets `parts - 1` more, so the acknowledgement waits for all.
 */
export function addParts(ledger: AckRefs, ackId: unknown, parts: number): void {
  if (typeof ackId === 'number' && parts > 1) ledger.addRefs(ackId, parts - 1);
}
