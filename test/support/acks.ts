import { ackLedger, type AckOutcome } from '../../nodes/lib/ingest/ack-ledger';

/** Acknowledgements held in the process-wide ledger as an ingest source holds them, and what became of each. */
export interface RecordingOwner {
  /** Every outcome the ledger reported, in the order it did. */
  seen: [number, AckOutcome][];
  /** The outcome of each id. */
  outcomes: Map<number, AckOutcome>;
  hold(): number;
  /** Forgets the ids still held (as a closing source does). */
  close(): void;
}

export function recordingOwner(timeoutMs = 60_000): RecordingOwner {
  const seen: [number, AckOutcome][] = [];
  const outcomes = new Map<number, AckOutcome>();
  const owner = {
    settled: (id: number, outcome: AckOutcome): void => {
      seen.push([id, outcome]);
      outcomes.set(id, outcome);
    },
  };
  return {
    seen,
    outcomes,
    hold: () => ackLedger.hold(owner, timeoutMs),
    close: () => ackLedger.forget(owner),
  };
}
