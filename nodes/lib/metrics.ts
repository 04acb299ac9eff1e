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
  const existing = metricsRegistry.getSingleMetric<L>(name);
  // A name taken by another kind of metric fails below, in prom-client: "already registered".
  if (existing instanceof Counter) return existing;
  return new Counter({ name, help, labelNames, registers: [metricsRegistry] });
}

export function gauge<L extends string>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  const existing = metricsRegistry.getSingleMetric<L>(name);
  if (existing instanceof Gauge) return existing;
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

/**
 * Readings recognised as a re-send of one already accepted (a QoS 1 redelivery, a device's retry), by stage.
 * They are passed on and written again as the same point, never dropped: the first copy may not be durable.
 */
export const duplicatesTotal = counter(
  'iotb_duplicates_total',
  'Re-sent readings passed on to be written again as the same point, by pipeline stage',
  ['stage'] as const,
);

/**
 * A gauge sampled at every scrape: `sample` sets the current values (after a reset, so label sets of components
 * that are gone disappear). For values other code owns, e.g. each writer's spool depth.
 */
export function sampledGauge<L extends string>(
  name: string,
  help: string,
  labelNames: readonly L[],
  sample: (g: Gauge<L>) => void,
): Gauge<L> {
  const existing = metricsRegistry.getSingleMetric<L>(name);
  if (existing instanceof Gauge) return existing;
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [metricsRegistry],
    collect() {
      this.reset();
      sample(this);
    },
  });
}

/** Active alarms (raised, not yet cleared) of every iotb-alarm node, by severity. */
export const alarmsActive = gauge('iotb_alarms_active', 'Active alarms by severity', ['severity'] as const);

/** Alarm lifecycle steps: raised, acknowledged, cleared. */
export const alarmTransitionsTotal = counter(
  'iotb_alarm_transitions_total',
  'Alarm lifecycle transitions, by kind and severity',
  ['transition', 'severity'] as const,
);
