import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { encodeLine, FieldTypes, LineProtocolError } from '../lib/influx/line-protocol';
import {
  AcceptanceClock,
  pointsFromMessage,
  DEFAULT_POINT_DEFAULTS,
  type PointDefaults,
} from '../lib/influx/points';
import { InfluxSender, type SenderStatus } from '../lib/influx/sender';
import { shortError } from '../lib/influx/status';
import { spoolDiskFreeBytes, spoolFillRatio, spoolQueuedPoints } from '../lib/metrics';
import { rejection, type Rejection } from '../lib/rejection';
import { Spool, SpoolDiskFullError, SpoolFullError, type FsyncPolicy, type WhenFull } from '../lib/spool';
import { Throttle } from '../lib/throttle';
import type { InfluxConfigNode } from '../influx/types';
import type { WriterHealthHolder } from '../lib/health';

interface InfluxWriteDef extends NodeDef {
  influx: string;
  measurement: string;
  integerFields: string;
  batchRecords: number | string;
  flushIntervalMs: number | string;
  spoolMaxMB: number | string;
  whenFull: WhenFull;
  fsync: FsyncPolicy;
  closeTimeoutS: number | string;
  statsIntervalS: number | string;
  confirm: boolean;
}

const num = (v: unknown, dflt: number): number => {
  const n = Number(v);
  return Number.isFinite(n) && n > 0 ? n : dflt;
};

/**
 * iotb-influx-write: readings and points -> line protocol -> durable spool (accepted) -> InfluxDB.
 * Outputs: 1 accepted (when "confirm" is on), 2 rejected (msg.rejection), 3 periodic stats.
 */
export = function register(RED: NodeAPI): void {
  function InfluxWriteNode(this: Node, config: InfluxWriteDef): void {
    RED.nodes.createNode(this, config);
    const influx = RED.nodes.getNode(config.influx) as InfluxConfigNode | null;
    if (!influx) {
      this.status({ fill: 'red', shape: 'ring', text: RED._('iotb-influx-write.status.noConfig') });
      this.on('input', (_msg, _send, done) => done(new Error(RED._('iotb-influx-write.status.noConfig'))));
      return;
    }
    const defaults: PointDefaults = {
      ...DEFAULT_POINT_DEFAULTS,
      measurement: config.measurement || DEFAULT_POINT_DEFAULTS.measurement,
    };
    const integerFields = new Set(
      (config.integerFields ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
    const fieldTypes = new FieldTypes();
    const clock = new AcceptanceClock();
    const userDir = RED.settings.userDir ?? process.cwd();
    const spoolRoot = join(userDir, 'iotb-spool');

    let sender: InfluxSender<unknown> | undefined;
    const opened = Spool.open({
      dir: join(spoolRoot, this.id),
      maxBytes: num(config.spoolMaxMB, 1024) * 1024 * 1024,
      fsync: config.fsync || 'interval',
      whenFull: config.whenFull || 'refuse',
    }).then((spool) => {
      sender = new InfluxSender(spool, (body, signal) => influx.connection.write(body, signal), {
        batchRecords: num(config.batchRecords, 5000),
        flushIntervalMs: num(config.flushIntervalMs, 1000),
        deadLetterFile: join(spoolRoot, `${this.id}.rejected.jsonl`),
      });
      sender.on('rejected', (r: Rejection) => {
        this.send([null, { payload: (r.details as { line: string }).line, rejection: r }, null]);
      });
      sender.on('state', (s: SenderStatus) => {
        if ((s.state === 'held' || s.state === 'retrying') && s.lastError !== lastReported) {
          lastReported = s.lastError;
          this.error(
            RED._('iotb-influx-write.error.writeFailed', { error: s.lastError ?? '', queued: s.queued }),
          );
        }
        status.call();
      });
      sender.on('written', () => status.call());
      sender.on('error', (err: Error) => this.error(err));
      spool.on('full', () => status.call());
      sender.start();
      return spool;
    });
    // Read by iotb-health (GET /api/health): the database state and the spool depth.
    (this as Node & WriterHealthHolder).writerSnapshot = () => sender?.snapshot();
    opened.catch((err: Error) => {
      this.error(RED._('iotb-influx-write.error.spool', { error: err.message }));
      this.status({ fill: 'red', shape: 'ring', text: RED._('iotb-influx-write.status.spoolError') });
    });
    let lastReported: string | undefined;
    let lastWritten = 0;
    let lastAt = Date.now();
    let rate = 0;

    const fmt = (n: number): string => n.toLocaleString('en-US');
    const status = new Throttle(() => {
      if (!sender) return;
      const s = sender.snapshot();
      const now = Date.now();
      if (now - lastAt >= 1000) {
        rate = Math.round(((s.written - lastWritten) * 1000) / (now - lastAt));
        lastWritten = s.written;
        lastAt = now;
      }
      const queued = fmt(s.queued);
      if (s.state === 'held' || s.state === 'retrying')
        this.status({
          fill: s.state === 'held' ? 'red' : 'yellow',
          shape: 'ring',
          text: RED._('iotb-influx-write.status.problem', { problem: RED._(shortError(s)), queued }),
        });
      else
        this.status({
          fill: 'green',
          shape: 'dot',
          text: RED._('iotb-influx-write.status.ok', { rate: fmt(rate), queued }),
        });
    }, 500);
    // Spool gauges for the operational alerts (prometheus/iotb-rules.yml), refreshed with the status.
    const writer = config.name || this.id;
    const spoolDir = join(spoolRoot, this.id);
    const maxBytes = num(config.spoolMaxMB, 1024) * 1024 * 1024;
    const gauges = (): void => {
      void opened
        .then((spool) => {
          if (!sender) return;
          spoolQueuedPoints.labels(writer).set(sender.snapshot().queued);
          spoolFillRatio.labels(writer).set(spool.stats().pendingBytes / maxBytes);
          const fs = statfsSync(spoolDir);
          spoolDiskFreeBytes.labels(writer).set(fs.bavail * fs.bsize);
        })
        .catch(() => undefined); // no spool (reported above) or its directory gone while closing
    };
    const ticker = setInterval(() => {
      status.call();
      gauges();
    }, 2000);

    const statsEveryS = Number(config.statsIntervalS);
    const statsTimer =
      statsEveryS > 0
        ? setInterval(() => {
            void opened.then((spool) => {
              if (sender)
                this.send([
                  null,
                  null,
                  { topic: 'stats', payload: { ...sender.snapshot(), rate, spool: spool.stats() } },
                ]);
            });
          }, statsEveryS * 1000)
        : undefined;

    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      const m = msg as NodeMessageInFlow & Record<string, unknown>;
      let lines: Buffer[];
      const refused: { index: number; code: string; reason: string }[] = [];
      try {
        const points = pointsFromMessage(m, defaults, clock);
        lines = [];
        points.forEach((p, index) => {
          try {
            lines.push(Buffer.from(encodeLine(p, { integerFields, fieldTypes })));
          } catch (err) {
            if (!(err instanceof LineProtocolError)) throw err;
            refused.push({ index, code: err.code, reason: err.message });
          }
        });
      } catch (err) {
        if (!(err instanceof LineProtocolError)) return done(err as Error);
        m.rejection = rejection('influx', err.code, err.message);
        send([null, m, null]);
        return done();
      }
      if (refused.length > 0) {
        const r =
          refused.length === 1
            ? refused[0]
            : { code: 'POINTS_REFUSED', reason: `${refused.length} points refused` };
        const out = lines.length > 0 ? RED.util.cloneMessage(m) : m;
        (out as Record<string, unknown>).rejection = rejection('influx', r.code, r.reason, {
          points: refused,
        });
        send([null, out, null]);
        if (lines.length === 0) return done();
      }
      opened
        .then((spool) => spool.append(lines))
        .then(() => {
          sender?.notify();
          status.call();
          if (config.confirm) {
            m.influx = { accepted: lines.length };
            send([m, null, null]);
          }
          done();
        })
        .catch((err: Error) => {
          if (err instanceof SpoolFullError || err instanceof SpoolDiskFullError) {
            // The spool's message says what happened and where; the rejection carries it as the reason.
            const code = err instanceof SpoolFullError ? 'SPOOL_FULL' : 'DISK_FULL';
            m.rejection = rejection('influx', code, `point not accepted: ${err.message}`);
            send([null, m, null]);
          }
          done(err);
        });
    });

    this.on('close', (_removed: boolean, done: () => void) => {
      clearInterval(ticker);
      for (const g of [spoolQueuedPoints, spoolFillRatio, spoolDiskFreeBytes]) g.remove(writer);
      if (statsTimer) clearInterval(statsTimer);
      status.cancel();
      const timeoutMs = num(config.closeTimeoutS, 5) * 1000;
      opened
        .then(async (spool) => {
          await sender?.stop(timeoutMs);
          await spool.close();
        })
        .catch((err: Error) => this.error(err))
        .finally(done);
    });
  }
  RED.nodes.registerType('iotb-influx-write', InfluxWriteNode);
};
