/** The embedded broker's metrics (Prometheus names as exported by /metrics). */
import { counter, gauge } from '../metrics';

export const refusedTotal = counter(
  'iotb_broker_refused_total',
  'Connections and CONNECTs the embedded broker refused, by reason',
  ['reason'] as const,
);
export const connectionsGauge = gauge('iotb_broker_connections', 'Open connections to the embedded broker');
export const messagesTotal = counter(
  'iotb_broker_messages_total',
  'Messages devices published through the broker, by kind',
  ['kind'] as const,
);
