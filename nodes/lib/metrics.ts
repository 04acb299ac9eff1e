import { Counter, Gauge, Registry } from 'prom-client';

/**
 * One process-wide registry of pipeline counters. Nodes are re-created on every deploy, so metrics are
 * get-or-create: a redeploy keeps counting instead of failing with "already registered".
 * Rendered as Prometheus text by iotb-metrics and `GET /metrics`. Kept on globalThis so that a second copy
 * of this module (tests load the TypeScript source beside the built nodes) counts into the same registry.
 */
export const metricsRegistry: Registry = ((globalThis as Record<symbol, Registry | undefined>)[
  Symbol.for('node-red-contrib-iot-backend.metrics')
] ??= new Registry());

export function counter<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  const existing = metricsRegistry.getSingleMetric(name);
  if (existing) return existing as Counter<L>;
  return new Counter({ name, help, labelNames, registers: [metricsRegistry] });
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = metricsRegistry.getSingleMetric(name);
  if (existing) return existing as Gauge<L>;
  return new Gauge({ name, help, labelNames, registers: [metricsRegistry] });
}

/**
 * Messages that nodes refused, by stage and code: with stored and spooled counts this accounts for every
 * message that entered the pipeline.
 */
export const rejectedTotal = counter(
  'iotb_rejected_total',
  'Messages refused, by pipeline stage and reason code',
  ['stage', 'code'] as const,
);

/** Active alarms (raised, not yet cleared) of every iotb-alarm node, by severity. */
export const alarmsActive = gauge('iotb_alarms_active', 'Active alarms by severity', ['severity'] as const);

/** Alarm lifecycle steps: raised, acknowledged, cleared. */
export const alarmTransitionsTotal = counter(
  'iotb_alarm_transitions_total',
  'Alarm lifecycle transitions, by kind and severity',
  ['transition', 'severity'] as const,
);

/** Points each InfluxDB writer holds in its spool, not yet confirmed by InfluxDB (grows while it is down). */
export const spoolQueuedPoints = gauge(
  'iotb_spool_queued_points',
  'Points spooled and not yet stored in InfluxDB',
  ['writer'] as const,
);

/** Spooled bytes over the writer's spool bound: at 1 the writer refuses (or drops) new points. */
export const spoolFillRatio = gauge('iotb_spool_fill_ratio', 'Spool bytes used over its bound (0..1)', [
  'writer',
] as const);

/** Free bytes on the file system of each writer's spool. */
export const spoolDiskFreeBytes = gauge('iotb_spool_disk_free_bytes', 'Free bytes on the spool file system', [
  'writer',
] as const);
