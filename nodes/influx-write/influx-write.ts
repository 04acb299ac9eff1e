import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { elementMessage } from '../lib/batch';
import { encodeLine, FieldTypes, type PointInput } from '../lib/influx/line-protocol';
import {
  acceptanceClock,
  encodeMessage,
  DEFAULT_POINT_DEFAULTS,
  type PointDefaults,
  type RefusedPoint,
} from '../lib/influx/points';
import { InfluxSender } from '../lib/influx/sender';
import { ackLedger, addParts, type AckIds } from '../lib/ingest/ack-ledger';
import { shortError } from '../lib/influx/status';
import { answerOnce } from '../lib/http/one-answer';
import { rejection, refuseMessage } from '../lib/rejection';
import { Spool, SpoolDiskFullError, SpoolFullError, type FsyncPolicy, type WhenFull } from '../lib/spool';
import { trackSpool } from '../lib/spool/gauges';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';
import type { WriterHealthHolder } from '../lib/health';

interface InfluxWriteDef extends NodeDef {
  influx: string;
  measurement: string;
  integerFields?: string;
  batchRecords: number | string;
  flushIntervalMs: number | string;
  spoolMaxMB: number | string;
  whenFull?: WhenFull;
  fsync?: FsyncPolicy;
  closeTimeoutS: number | string;
  statsIntervalS: number | string;
  confirm: boolean;
}

/** Batch size, intervals, the spool bound and the close timeout are positive numbers. */
const num = (value: unknown, fallback: number): number => numberSetting(value, { fallback, above: 0 });

/**
 * iotb-influx-write: readings and points -> line protocol -> durable spool (accepted) -> InfluxDB.
 * Outputs: 1 accepted (when "confirm" is on), 2 rejected (msg.rejection), 3 periodic stats.
 */
export = function register(RED: NodeAPI): void {
  function InfluxWriteNode(this: Node, config: InfluxWriteDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    // Every message leaves stored or rejected: without a connection each is refused, not acknowledged.
    const connection = glue.requireConfig('influx', config.influx, { stage: 'influx', outputs: 3, index: 1 });
    if (!connection) return;
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

    let sender: InfluxSender<unknown> | undefined;
    let spoolNow: Spool | undefined;
    const opened = Spool.open({
      dir: glue.stateFile('spool', '', [glue.userFile(join('iotb-spool', this.id))]),
      maxBytes: num(config.spoolMaxMB, 1024) * 1024 * 1024,
      fsync: config.fsync || 'interval',
      whenFull: config.whenFull || 'refuse',
    }).then((spool) => {
      sender = new InfluxSender(spool, (body, signal) => connection.write(body, signal), {
        batchRecords: num(config.batchRecords, 5000),
        flushIntervalMs: num(config.flushIntervalMs, 1000),
        deadLetterFile: glue.stateFile('spool', '.rejected.jsonl', [
          glue.userFile(join('iotb-spool', `${this.id}.rejected.jsonl`)),
        ]),
      });
      // The sender and the spool are this node's own: they stop on close, their listeners go with them.
      sender.on('rejected', (r) => {
        this.send([null, { payload: (r.details as { line: string }).line, rejection: r }, null]);
      });
      sender.on('state', (s) => {
        if ((s.state === 'held' || s.state === 'retrying') && s.lastError !== lastReported) {
          lastReported = s.lastError;
          this.error(glue.t('error.writeFailed', { error: s.lastError ?? '', queued: s.queued }));
        }
        status.update();
      });
      sender.on('written', () => status.update());
      sender.on('error', (err) => this.error(err));
      spool.on('full', () => status.update());
      spool.on('diskFull', () => status.update());
      glue.onClose(trackSpool(this.id, this.name || '', spool));
      spoolNow = spool;
      sender.start();
      return spool;
    });
    // Undone last (close steps run in reverse): the sender gets until the close timeout to send what is queued.
    glue.onClose(() =>
      opened.then(async (spool) => {
        await sender?.stop(num(config.closeTimeoutS, 5) * 1000);
        await spool.close();
      }),
    );
    // Read by iotb-health (GET /api/health): the database state, the spool depth and whether it takes data.
    (this as Node & WriterHealthHolder).writerSnapshot = () => {
      const s = sender?.snapshot();
      return s && spoolNow ? { ...s, spool: spoolNow.condition() } : s;
    };
    opened.catch((err: unknown) => {
      this.error(glue.t('error.spool', { error: (err as Error).message }));
      status.show({ fill: 'red', shape: 'ring', key: 'status.spoolError' });
    });
    let lastReported: string | undefined;
    let lastWritten = 0;
    let lastAt = Date.now();
    let rate = 0;

    const fmt = (n: number): string => n.toLocaleString('en-US');
    const status = glue.status((): StatusView | undefined => {
      if (!sender) return undefined;
      const s = sender.snapshot();
      const now = Date.now();
      if (now - lastAt >= 1000) {
        rate = Math.round(((s.written - lastWritten) * 1000) / (now - lastAt));
        lastWritten = s.written;
        lastAt = now;
      }
      const queued = fmt(s.queued);
      const refusing = spoolNow?.stats();
      if (refusing?.full || refusing?.diskFull) {
        const problem = glue.t(`problem.${refusing.full ? 'spoolFull' : 'diskFull'}`);
        return { fill: 'red', shape: 'ring', key: 'status.problem', vars: { problem, queued } };
      }
      if (s.state === 'held' || s.state === 'retrying') {
        const problem = RED._(shortError(s));
        const fill = s.state === 'held' ? 'red' : 'yellow';
        return { fill, shape: 'ring', key: 'status.problem', vars: { problem, queued } };
      }
      return { fill: 'green', shape: 'dot', key: 'status.ok', vars: { rate: fmt(rate), queued } };
    });
    glue.every(2000, () => status.update());

    const statsEveryS = numberSetting(config.statsIntervalS, { fallback: 0, above: 0 });
    if (statsEveryS > 0)
      glue.every(statsEveryS * 1000, () => {
        void opened.then((spool) => {
          if (sender)
            this.send([
              null,
              null,
              { topic: 'stats', payload: { ...sender.snapshot(), rate, spool: spool.stats() } },
            ]);
        });
      });

    const encode = (p: PointInput): string => encodeLine(p, { integerFields, fieldTypes });
    const clone = (msg: Record<string, unknown>): Record<string, unknown> => RED.util.cloneMessage(msg);

    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      const m = msg as NodeMessageInFlow & Record<string, unknown>;
      let encoded;
      try {
        encoded = encodeMessage(m, defaults, acceptanceClock, encode);
      } catch (err) {
        return done(err as Error);
      }
      const { lines, kept, refused } = encoded;
      if (lines.length === 0 && refused.length === 1 && refused[0].index === undefined) {
        // One reading or point, refused: the message itself leaves with the reason (and its ack id).
        refuseMessage(m, rejection('influx', refused[0].code, refused[0].reason));
        send([null, m, null]);
        return done();
      }
      // Stored elements settle once they are in the spool; each refused one leaves alone and is settled
      // where its rejection is stored. One ack id shared by all elements gets a reference per extra part.
      const ackIds = m.ackId as AckIds;
      if (refused.length > 0) {
        if (!Array.isArray(ackIds)) addParts(ackLedger, ackIds, (lines.length > 0 ? 1 : 0) + refused.length);
        const bad = refused.map((r) => refusedElement(m, r, clone));
        answerOnce(m, [m], bad, lines.length);
        send([null, bad, null]);
        if (lines.length === 0) return done();
      }
      const storedIds: AckIds =
        kept && Array.isArray(ackIds) ? kept.map((i) => (ackIds as unknown[])[i] as number | null) : ackIds;
      opened
        .then((spool) => spool.append(lines))
        .then(() => {
          ackLedger.settle(storedIds, 'stored');
          sender?.notify();
          status.update();
          if (config.confirm) {
            m.influx = { accepted: lines.length };
            send([m, null, null]);
          }
          done();
        })
        .catch((err: unknown) => {
          // Not durable, whatever the cause (full, disk full, a spool that did not open): no acknowledgement.
          ackLedger.settle(storedIds, 'failed');
          if (err instanceof SpoolFullError || err instanceof SpoolDiskFullError) {
            // The spool's message says what happened and where; the rejection carries it as the reason.
            const code = err instanceof SpoolFullError ? 'SPOOL_FULL' : 'DISK_FULL';
            const reason = `point not accepted: ${err.message}`;
            if (Array.isArray(m.device)) {
              // Readings of many devices: each leaves alone, so each refusal is stored under its device.
              const indices = kept ?? lines.map((_, i) => i);
              send([null, indices.map((i) => refusedElement(m, { index: i, code, reason }, clone)), null]);
            } else {
              refuseMessage(m, rejection('influx', code, reason));
              send([null, m, null]);
            }
          }
          done(err as Error);
        });
    });
  }
  RED.nodes.registerType('iotb-influx-write', InfluxWriteNode);
};

/** The message a refused element of a batch leaves as: its reading, device, time and ack id, and why. */
function refusedElement(
  m: Record<string, unknown>,
  r: RefusedPoint,
  clone: (m: Record<string, unknown>) => Record<string, unknown>,
): Record<string, unknown> {
  const index = r.index as number;
  const out = elementMessage(m, index, clone);
  out.ackId ??= null;
  refuseMessage(out, rejection('influx', r.code, r.reason, { index }));
  return out;
}
