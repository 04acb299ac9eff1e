import { rmSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import { batchElement, elementMessage } from '../lib/batch';
import type { DeviceDirectory } from '../lib/device-contracts';
import { ackLedger, addParts } from '../lib/ingest/ack-ledger';
import { QualityEngine, type FilledReading, type ReadingOutcome } from '../lib/quality/engine';
import type { FieldQuality } from '../lib/quality/flags';
import { loadState, saveState } from '../lib/quality/persist';
import { PRESETS, type FieldRuleInput } from '../lib/quality/rules';
import { answerOnce } from '../lib/http/one-answer';
import { rejection, refuseMessage } from '../lib/rejection';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface QualityNodeDef extends NodeDef {
  registry?: string;
  rules?: FieldRuleInput[];
  checkOtherFields?: boolean;
  window?: number | string;
  maxFields?: number | string;
  expectedIntervalS?: number | string;
  fillGaps?: boolean;
  maxFill?: number | string;
  ttlHours?: number | string;
  persist?: boolean;
  saveIntervalS?: number | string;
  scorecardIntervalS?: number | string;
}

type Msg = NodeMessageInFlow & {
  device?: unknown;
  ackId?: unknown;
  timestamp?: unknown;
  quality?: unknown;
  rejection?: unknown;
  scorecard?: unknown;
};

type QualityMap = Record<string, FieldQuality>;

const NO_DEVICE = 'msg.device.id is missing: quality keeps state per device';

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** iotb-quality: checks, cleans and flags each reading's fields per device (logic in nodes/lib/quality). */
export = function register(RED: NodeAPI): void {
  function QualityNode(this: Node, config: QualityNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const directory: DeviceDirectory | undefined = glue.optionalConfig('registry', config.registry);
    const window = numberSetting(config.window, { fallback: 7, min: 1, integer: true });
    const maxFields = numberSetting(config.maxFields, { fallback: 16, min: 1, integer: true });
    const stateFile = config.persist !== false ? glue.stateFile('quality', '.state') : undefined;

    let engine: QualityEngine;
    try {
      const loaded = stateFile ? loadState(stateFile, window, maxFields) : { status: 'none' as const };
      if (loaded.status === 'corrupt')
        this.warn(
          glue.t('warn.corrupt', { file: stateFile ?? '', error: loaded.error, movedTo: loaded.movedTo }),
        );
      engine = new QualityEngine({
        window,
        maxFields,
        rules: Array.isArray(config.rules) ? config.rules : [],
        checkOtherFields: config.checkOtherFields !== false,
        expectedIntervalMs: numberSetting(config.expectedIntervalS, { fallback: 0, min: 0 }) * 1000,
        fillGaps: config.fillGaps === true,
        maxFill: numberSetting(config.maxFill, { fallback: 10, min: 0, integer: true }),
        schemaFor: directory ? (type) => directory.getType(type)?.schema : undefined,
        ...(loaded.status === 'loaded' ? { store: loaded.store, fieldNames: loaded.fieldNames } : {}),
      });
      if (loaded.status === 'loaded')
        this.log(glue.t('log.restored', { devices: engine.store.deviceCount, file: stateFile ?? '' }));
    } catch (err) {
      glue.cannotWork(glue.t('errors.config', { error: (err as Error).message }), 'CONFIG_INVALID');
      return;
    }

    let readings = 0;
    let flagged = 0;
    let dirty = false;
    const status = glue.status(() => ({
      fill: flagged ? 'yellow' : 'green',
      shape: 'dot',
      key: 'status.counts',
      vars: { readings, flagged, devices: engine.store.deviceCount },
    }));
    if (directory) glue.listen(directory)('types', () => engine.invalidateRules());

    const clone = (m: Record<string, unknown>): Record<string, unknown> => RED.util.cloneMessage(m);

    /** Runs one reading through the engine; the outcome is the engine's reused one (see ReadingOutcome). */
    const judge = (
      deviceId: string,
      type: string,
      ts: number,
      reading: Record<string, unknown>,
      upstream: unknown,
    ) => {
      const o: ReadingOutcome = engine.process(
        deviceId,
        type,
        ts,
        reading,
        isObject(upstream) ? upstream : undefined,
      );
      readings++;
      if (o.quality) flagged++;
      const untracked = engine.takeUntrackedNotice(); // once per device type
      if (untracked)
        this.warn(
          glue.t('warn.untracked', {
            max: maxFields,
            type: untracked.type || '-',
            fields: untracked.fields.join(', '),
          }),
        );
      return o;
    };

    /**
     * A batch: each element is one reading, judged on its own against its own device's state (`msg.device`
     * is one device, or an array parallel to the payload in a batch of many devices); order within the
     * array matters, as for messages. Out 1 keeps the batch's parallel arrays (batch.ts) in step with the
     * kept readings and their fills; each refused reading leaves alone on out 2 with its index and ack id.
     */
    const sendBatch = (
      msg: Msg,
      payload: unknown[],
      send: (m: (NodeMessage | NodeMessage[] | null)[]) => void,
    ): void => {
      const fallbackTs = Date.now();
      const perElement = Array.isArray(msg.device);
      const acks = Array.isArray(msg.ackId) ? (msg.ackId as unknown[]) : undefined;
      const kept: unknown[] = [];
      const quality: (QualityMap | null)[] = [];
      const timestamps: number[] = [];
      const messageIds: unknown[] = [];
      const devices: unknown[] | undefined = perElement ? [] : undefined;
      const ackIds: unknown[] | undefined = acks ? [] : undefined;
      const refused: NodeMessage[] = [];
      const refuse = (index: number, code: string, reason: string, details?: object): void => {
        const out = elementMessage(msg, index, clone);
        out.ackId ??= null;
        refuseMessage(out, rejection('quality', code, reason, { index, ...details }));
        refused.push(out);
      };
      dirty = true;
      for (let index = 0; index < payload.length; index++) {
        const el = payload[index];
        const device = batchElement(msg.device, index);
        if (!isObject(device) || typeof device.id !== 'string' || device.id === '') {
          refuse(index, 'NO_DEVICE', NO_DEVICE);
          continue;
        }
        if (!isObject(el)) {
          refuse(index, 'NOT_A_READING', `element ${index} is not an object of fields`);
          continue;
        }
        const given = el.ts ?? batchElement(msg.timestamp, index);
        const at = typeof given === 'number' && Number.isFinite(given) ? given : fallbackTs;
        const r = judge(
          device.id,
          typeof device.type === 'string' ? device.type : '',
          at,
          el,
          batchElement(msg.quality, index),
        );
        if (r.rejected) {
          refuse(index, r.rejected.check.toUpperCase(), r.rejected.reason, r.rejected);
          continue;
        }
        // A restored reading (a level shift's first reading, replaced when it arrived) goes out again raw,
        // before the reading that confirmed the shift; fills after it. Neither holds an acknowledgement.
        for (const f of [...(r.restored ?? []), ...(r.fills ?? [])]) {
          kept.push({ ts: f.timestamp, ...f.payload });
          quality.push(f.quality);
          timestamps.push(f.timestamp);
          messageIds.push(`${device.id}:${f.timestamp}`);
          devices?.push(device);
          ackIds?.push(null); // nobody waits for its acknowledgement: the original was settled when it came
        }
        kept.push(el);
        quality.push(r.quality ?? null);
        timestamps.push(at);
        messageIds.push(batchElement(msg.messageId, index));
        devices?.push(device);
        ackIds?.push(acks?.[index] ?? null);
      }
      // One ack id shared by the whole array (not one per element) settles once per message it is in.
      if (!acks) addParts(ackLedger, msg.ackId, (kept.length > 0 ? 1 : 0) + refused.length);
      msg.payload = kept;
      msg.quality = quality;
      msg.timestamp = timestamps;
      msg.messageId = messageIds;
      if (devices) msg.device = devices;
      if (ackIds) msg.ackId = ackIds;
      answerOnce(msg, [msg], refused, kept.length);
      send([kept.length ? msg : null, refused]);
    };

    this.on('input', (msg: Msg, send, done) => {
      if (msg.scorecard === true || msg.topic === 'scorecard') {
        const id = isObject(msg.device) && typeof msg.device.id === 'string' ? msg.device.id : undefined;
        msg.topic = 'quality/scorecard';
        msg.payload = engine.scorecard(id);
        send([msg, null]);
        return done();
      }
      const payload = msg.payload;
      if (Array.isArray(payload)) {
        sendBatch(msg, payload, send);
        status.update();
        return done();
      }
      const device = msg.device;
      if (!isObject(device) || typeof device.id !== 'string' || device.id === '') {
        refuseMessage(msg, rejection('quality', 'NO_DEVICE', NO_DEVICE));
        send([null, msg]);
        return done();
      }
      const deviceId = device.id;
      const type = typeof device.type === 'string' ? device.type : '';
      const ts =
        typeof msg.timestamp === 'number' && Number.isFinite(msg.timestamp) ? msg.timestamp : Date.now();
      dirty = true;

      if (isObject(payload)) {
        const r = judge(deviceId, type, ts, payload, msg.quality);
        if (r.quality) msg.quality = { ...(isObject(msg.quality) ? msg.quality : {}), ...r.quality };
        if (r.rejected) {
          refuseMessage(
            msg,
            rejection('quality', r.rejected.check.toUpperCase(), r.rejected.reason, r.rejected),
          );
          send([null, msg]);
        } else if (r.fills || r.restored) {
          const extra = (f: FilledReading, imputed: boolean): NodeMessage => ({
            topic: msg.topic,
            device: msg.device,
            timestamp: f.timestamp,
            messageId: `${deviceId}:${f.timestamp}`,
            payload: f.payload,
            quality: f.quality,
            ...(imputed ? { imputed } : { restored: true }),
          });
          const extras = [
            ...(r.restored ?? []).map((f) => extra(f, false)),
            ...(r.fills ?? []).map((f) => extra(f, true)),
          ];
          send([[...extras, msg], null]);
        } else send([msg, null]);
        status.update();
        return done();
      }

      refuseMessage(
        msg,
        rejection('quality', 'NOT_A_READING', 'msg.payload must be an object of fields or an array of them'),
      );
      send([null, msg]);
      done();
    });

    const save = (): void => {
      if (!stateFile || !dirty) return;
      try {
        saveState(stateFile, engine);
        dirty = false;
      } catch (err) {
        this.error(glue.t('errors.save', { file: stateFile, error: (err as Error).message }));
      }
    };
    glue.onClose((removed) => {
      if (!removed) save();
      else if (stateFile) rmSync(stateFile, { force: true }); // the node is gone: so is its filter history
    });
    if (stateFile) glue.every(numberSetting(config.saveIntervalS, { fallback: 60, min: 1 }) * 1000, save);
    const ttlMs = numberSetting(config.ttlHours, { fallback: 24, min: 0 }) * 3_600_000;
    if (ttlMs > 0)
      glue.every(Math.min(ttlMs / 10, 600_000), () => {
        if (engine.store.evictIdle(Date.now() - ttlMs) > 0) dirty = true;
      });
    const scorecardS = numberSetting(config.scorecardIntervalS, { fallback: 0, min: 0 });
    if (scorecardS > 0)
      glue.every(scorecardS * 1000, () =>
        this.send([{ topic: 'quality/scorecard', payload: engine.scorecard() }, null]),
      );
  }

  RED.nodes.registerType('iotb-quality', QualityNode);
  // The editor's presets come from the same table the runtime uses.
  RED.httpAdmin.get('/iotb-quality/presets', RED.auth.needsPermission('iotb-quality.read'), (_req, res) => {
    res.json(PRESETS);
  });
};
