import { counter, gauge } from '../metrics';

/**
 * Metrics every ingest source shares (the embedded broker, the external-broker node, HTTP ingest), told apart
 * by the `source` label.
 */
export const acksHeld = gauge(
  'iotb_ingest_acks_held',
  'Acknowledgements held until the reading is durable (in the spool) or refused with a reason',
  ['source'] as const,
);

export const acksWaiting = gauge(
  'iotb_ingest_acks_waiting',
  'Publications waiting at the bound of held acknowledgements (their connections are not read meanwhile)',
  ['source'] as const,
);

export const ackTimeoutsTotal = counter(
  'iotb_ingest_ack_timeouts_total',
  'Acknowledgements sent because nobody stored or refused the reading within the ack timeout',
  ['source'] as const,
);

export const ackFailuresTotal = counter(
  'iotb_ingest_ack_failures_total',
  'Readings not acknowledged because the writer could not make them durable (spool or disk full)',
  ['source'] as const,
);
