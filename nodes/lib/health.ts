/**
 * The backend's health in one object, from what the running components report: every embedded broker (is it
 * listening, how many connections) and every InfluxDB writer (is the database taking writes, how deep is the
 * spool, can the spool still take data). No Node-RED here: the iotb-health node finds the components and passes
 * their probes in.
 */
import type { SpoolCondition } from './spool';

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
  /** The spool's condition (Spool.condition()). */
  spool?: SpoolCondition;
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
    writers: WriterRow[];
  };
  /**
   * Points (and their bytes on disk) accepted into the spools and not yet confirmed by InfluxDB, over all
   * writers; degraded while a spool refuses appends or its volume runs low on space.
   */
  spool: { status: HealthStatus; depth: number; bytes: number };
  /** Why the status is not ok, one sentence per cause, e.g. "telemetry: spool volume full (…)". */
  reasons: string[];
}

export interface WriterRow {
  id: string;
  name?: string;
  state: string;
  lastError?: string;
  written: number;
  spooled: number;
  spooledBytes?: number;
  /** Free bytes on the spool's volume. */
  freeBytes?: number;
  spoolReason?: SpoolReason;
}

/** Why a spool cannot take (much) more: maxBytes reached, its volume full, or the volume low on space. */
export type SpoolReason = 'spool full' | 'spool volume full' | 'free space low';

/**
 * The reason a spool is degraded, if it is. A volume that was full counts as full until an append succeeds or
 * its free space is back above the low mark (deliveries free space without an append to prove it).
 */
export function spoolReason(c: SpoolCondition): SpoolReason | undefined {
  if (c.full) return 'spool full';
  const low = c.freeBytes !== undefined && c.freeBytes < c.lowBytes;
  if (c.diskFull && (low || c.freeBytes === undefined)) return 'spool volume full';
  return low ? 'free space low' : undefined;
}

function spoolDetail(reason: SpoolReason, c: SpoolCondition): string {
  const mib = (n: number): string => `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (reason === 'spool full') return `${mib(c.pendingBytes)} of ${mib(c.maxBytes)} waiting for delivery`;
  if (c.freeBytes === undefined || c.sizeBytes === undefined) return 'appends fail with ENOSPC';
  return `${mib(c.freeBytes)} free of ${mib(c.sizeBytes)}`;
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
  writers: { id: string; name?: string; snapshot: WriterSnapshot | undefined }[],
  now = Date.now(),
): HealthReport {
  const reasons: string[] = [];
  const brokerRows = brokers.map(({ id, probe }) => ({ id, state: probe.state, ...probe.stats() }));
  let brokerStatus: HealthStatus =
    brokerRows.length > 0 && brokerRows.every((b) => b.state === 'listening') ? 'ok' : 'down';
  const brokerReasons: string[] = [];
  if (brokerRows.length === 0) reasons.push('no embedded broker');
  for (const b of brokerRows) {
    if (b.state !== 'listening') brokerReasons.push(`broker ${b.id}: ${b.state}`);
    if (!b.acks || b.acks.lastTimeoutAt === 0 || now - b.acks.lastTimeoutAt > ACK_TIMEOUT_DEGRADES_MS)
      continue;
    brokerStatus = worst(brokerStatus, 'degraded');
    brokerReasons.push(
      `broker ${b.id}: readings acknowledged after the ack timeout without being stored (${b.acks.timeouts} in all, last at ${new Date(b.acks.lastTimeoutAt).toISOString()})`,
    );
  }
  reasons.push(...brokerReasons);

  let dbStatus: HealthStatus = writers.length > 0 ? 'ok' : 'down';
  let spoolStatus: HealthStatus = 'ok';
  let depth = 0;
  let bytes = 0;
  if (writers.length === 0) reasons.push('no InfluxDB writer');
  const writerRows = writers.map(({ id, name, snapshot }): WriterRow => {
    const label = name || id;
    const named = name ? { name } : {};
    if (!snapshot) {
      dbStatus = 'down';
      reasons.push(`${label}: no spool`);
      return { id, ...named, state: 'no spool', written: 0, spooled: 0 };
    }
    if (!WRITER_OK.has(snapshot.state)) {
      dbStatus = worst(dbStatus, 'degraded');
      reasons.push(
        `${label}: InfluxDB ${snapshot.state}${snapshot.lastError ? ` (${snapshot.lastError})` : ''}`,
      );
    }
    depth += snapshot.queued;
    const row: WriterRow = {
      id,
      ...named,
      state: snapshot.state,
      ...(snapshot.lastError ? { lastError: snapshot.lastError } : {}),
      written: snapshot.written,
      spooled: snapshot.queued,
    };
    const c = snapshot.spool;
    if (c) {
      bytes += c.pendingBytes;
      row.spooledBytes = c.pendingBytes;
      if (c.freeBytes !== undefined) row.freeBytes = c.freeBytes;
      const why = spoolReason(c);
      if (why) {
        spoolStatus = 'degraded';
        row.spoolReason = why;
        reasons.push(`${label}: ${why} (${spoolDetail(why, c)})`);
      }
    }
    return row;
  });
  return {
    status: worst(worst(brokerStatus, dbStatus), spoolStatus),
    at: now,
    broker: {
      status: brokerStatus,
      brokers: brokerRows,
      ...(brokerReasons.length ? { reasons: brokerReasons } : {}),
    },
    database: { status: dbStatus, writers: writerRows },
    spool: { status: spoolStatus, depth, bytes },
    reasons,
  };
}

/** HTTP status for a report: 200 only when everything is ok, so a load balancer or probe can act on it. */
export function healthHttpStatus(report: HealthReport): 200 | 503 {
  return report.status === 'ok' ? 200 : 503;
}
