/**
 * The backend's health in one object, from what the running components report: every embedded broker (is it
 * listening, how many connections) and every InfluxDB writer (is the database taking writes, how deep is the
 * spool). No Node-RED here: the iotb-health node finds the components and passes their probes in.
 */

export type HealthStatus = 'ok' | 'degraded' | 'down';

/** What an embedded broker reports (DeviceBroker satisfies it). */
export interface BrokerProbe {
  readonly state: string;
  stats(): { connections: number; online: number; acks?: AckProbe };
}

/** A broker's held acknowledgements (AckGate.stats()). */
export interface AckProbe {
  held: number;
  waiting: number;
  timeouts: number;
  /** When a held reading last timed out (ms since epoch), 0 if never. */
  lastTimeoutAt: number;
}

/** How long an ack timeout keeps the broker part degraded. */
export const ACK_TIMEOUT_DEGRADES_MS = 5 * 60_000;

/** What an InfluxDB writer reports (InfluxSender.snapshot()); undefined while its spool is still opening. */
export interface WriterSnapshot {
  state: string;
  lastError?: string;
  queued: number;
  written: number;
}

/** Set on an iotb-influx-write node instance. */
export interface WriterHealthHolder {
  writerSnapshot?: () => WriterSnapshot | undefined;
}

/** Set on an iotb-broker config node instance. */
export interface BrokerHealthHolder {
  broker?: BrokerProbe;
}

export interface HealthReport {
  status: HealthStatus;
  at: number;
  broker: {
    status: HealthStatus;
    brokers: { id: string; state: string; connections: number; online: number; acks?: AckProbe }[];
    /** Why the part is not ok, when it is degraded. */
    reasons?: string[];
  };
  database: {
    status: HealthStatus;
    writers: { id: string; state: string; lastError?: string; written: number; spooled: number }[];
  };
  /** Points accepted into the spools and not yet confirmed by InfluxDB, over all writers. */
  spool: { depth: number };
}

const WRITER_OK = new Set(['idle', 'sending']);

function worst(a: HealthStatus, b: HealthStatus): HealthStatus {
  const rank: Record<HealthStatus, number> = { ok: 0, degraded: 1, down: 2 };
  return rank[a] >= rank[b] ? a : b;
}

/**
 * Broker: down unless every broker listens; degraded for ACK_TIMEOUT_DEGRADES_MS after a held reading timed out
 * (it was acknowledged without being stored: a node between ingest and storage drops readings, an operator
 * should look). Waiting at the bound of held readings is not degraded: that is backpressure doing its job. Database: degraded while a writer retries or holds its data (the
 * spool keeps it, nothing is lost yet), down when a writer has no spool. Overall: the worse of the two; a part
 * with no component is 'down' (a backend without a broker or a writer cannot do its job).
 */
export function healthReport(
  brokers: { id: string; probe: BrokerProbe }[],
  writers: { id: string; snapshot: WriterSnapshot | undefined }[],
  now = Date.now(),
): HealthReport {
  const brokerRows = brokers.map(({ id, probe }) => ({ id, state: probe.state, ...probe.stats() }));
  let brokerStatus: HealthStatus =
    brokerRows.length > 0 && brokerRows.every((b) => b.state === 'listening') ? 'ok' : 'down';
  const reasons: string[] = [];
  for (const b of brokerRows) {
    if (!b.acks || b.acks.lastTimeoutAt === 0 || now - b.acks.lastTimeoutAt > ACK_TIMEOUT_DEGRADES_MS)
      continue;
    brokerStatus = worst(brokerStatus, 'degraded');
    reasons.push(
      `broker ${b.id}: readings acknowledged after the ack timeout without being stored (${b.acks.timeouts} in all, last at ${new Date(b.acks.lastTimeoutAt).toISOString()})`,
    );
  }

  let dbStatus: HealthStatus = writers.length > 0 ? 'ok' : 'down';
  let depth = 0;
  const writerRows = writers.map(({ id, snapshot }) => {
    if (!snapshot) {
      dbStatus = 'down';
      return { id, state: 'no spool', written: 0, spooled: 0 };
    }
    if (!WRITER_OK.has(snapshot.state)) dbStatus = worst(dbStatus, 'degraded');
    depth += snapshot.queued;
    return {
      id,
      state: snapshot.state,
      ...(snapshot.lastError ? { lastError: snapshot.lastError } : {}),
      written: snapshot.written,
      spooled: snapshot.queued,
    };
  });
  return {
    status: worst(brokerStatus, dbStatus),
    at: now,
    broker: { status: brokerStatus, brokers: brokerRows, ...(reasons.length ? { reasons } : {}) },
    database: { status: dbStatus, writers: writerRows },
    spool: { depth },
  };
}

/** HTTP status for a report: 200 only when everything is ok, so a load balancer or probe can act on it. */
export function healthHttpStatus(report: HealthReport): 200 | 503 {
  return report.status === 'ok' ? 200 : 503;
}
