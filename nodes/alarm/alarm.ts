import { existsSync, readFileSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef, NodeMessage, NodeMessageInFlow } from 'node-red';
import type { Alarm, Transition } from '../lib/alarms/alarm';
import { ALARM_STATES } from '../lib/alarms/alarm';
import { AlarmEngine, type AlarmFilter, type ManualResult } from '../lib/alarms/engine';
import { compileRules, SEVERITIES, type Rule, type RuleInput } from '../lib/alarms/rules';
import { FileAlarmStore, MemoryAlarmStore, type AlarmStore } from '../lib/alarms/store';
import type { DeviceDirectory } from '../lib/device-contracts';
import { writeFileAtomicSync } from '../lib/atomic-file';
import { batchElement } from '../lib/batch';
import { alarmsActive, alarmTransitionsTotal, rejectedTotal } from '../lib/metrics';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface AlarmNodeDef extends NodeDef {
  registry?: string;
  rules?: RuleInput[] | string;
  tickS?: number | string;
  persist?: boolean;
  maxDevices?: number | string;
}

type Msg = NodeMessageInFlow & {
  device?: unknown;
  timestamp?: unknown;
  quality?: unknown;
  rejection?: unknown;
  alarmId?: unknown;
  filter?: unknown;
  operator?: { apiKeyId?: unknown };
  user?: unknown;
  statusCode?: number;
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
/** What a node's `send` takes: a message, an array of messages or nothing per output. */
type Send = (m: (NodeMessage | NodeMessage[] | null)[]) => void;

const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

/** Every engine in this process: the active-alarm gauge is their sum. */
const engines = new Set<AlarmEngine>();
function updateActiveGauge(): void {
  const sum: Record<string, number> = Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
  for (const e of engines) for (const [s, n] of Object.entries(e.activeBySeverity())) sum[s] += n;
  for (const s of SEVERITIES) alarmsActive.labels(s).set(sum[s]);
}

/** The point stored in InfluxDB measurement `alarms` for one transition. */
function alarmPoint(t: Transition): Record<string, unknown> {
  const a = t.alarm;
  const fields: Record<string, unknown> = {
    id: a.id,
    transition: t.transition,
    count: a.count,
    summary: a.summary,
    values: JSON.stringify(t.transition === 'cleared' ? (a.clearValues ?? {}) : a.lastValues),
  };
  if (t.transition === 'acknowledged') fields.user = a.ackBy;
  if (t.transition === 'cleared' && a.clearedBy) fields.user = a.clearedBy;
  return {
    measurement: 'alarms',
    tags: { device: a.device, rule: a.rule, severity: a.severity, state: t.to },
    fields,
    timestamp: t.at,
  };
}

/**
 * iotb-alarm: judges readings against alarm rules and keeps each alarm's lifecycle (logic in
 * nodes/lib/alarms). Outputs: 1 every transition, 2 the same as InfluxDB points, 3 answers to
 * `alarms/list|get|ack|clear` messages (the HTTP API).
 */
export = function register(RED: NodeAPI): void {
  function AlarmNode(this: Node, config: AlarmNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const persist = config.persist !== false;
    const stateFile = persist ? glue.stateFile('alarm', '.json') : undefined;
    const seenFile = persist ? glue.stateFile('alarm', '.seen.json') : undefined;
    const directory: DeviceDirectory | undefined = glue.optionalConfig('registry', config.registry);
    const maxDevices = numberSetting(config.maxDevices, { fallback: 100_000, above: 0 });
    const store: AlarmStore = stateFile ? new FileAlarmStore(stateFile) : new MemoryAlarmStore();
    /** The node's rules, then each registry type's (the registry validated them, each limited to its type). */
    const allRules = (): Rule[] => [
      ...compileRules(typeof config.rules === 'string' ? JSON.parse(config.rules) : (config.rules ?? [])),
      ...(directory?.listTypes?.() ?? []).flatMap((t) => (t.alarms ? compileRules(t.alarms) : [])),
    ];
    let engine: AlarmEngine;
    try {
      engine = new AlarmEngine(allRules(), { maxDevices, store });
    } catch (err) {
      glue.cannotWork(glue.t('errors.config', { error: (err as Error).message }), 'CONFIG_INVALID');
      return;
    }
    engines.add(engine);
    updateActiveGauge();
    glue.onClose(() => {
      saveSeen();
      engines.delete(engine);
      try {
        engine.close();
      } catch (err) {
        this.warn(glue.t('errors.store', { error: (err as Error).message }));
      }
      updateActiveGauge();
    });
    // Last-seen times of absence rules (not alarms, so not in the store): saved every minute and on close.
    const tracksAbsence = (): boolean => engine.rules.some((r) => r.kind === 'absence');
    if (tracksAbsence() && seenFile && existsSync(seenFile)) {
      try {
        engine.restoreLastSeen(JSON.parse(readFileSync(seenFile, 'utf8')) as Record<string, unknown>);
      } catch (err) {
        this.warn(glue.t('errors.seen', { file: seenFile, error: (err as Error).message }));
      }
    }
    const saveSeen = (): void => {
      if (!tracksAbsence() || !seenFile) return;
      try {
        writeFileAtomicSync(seenFile, JSON.stringify(engine.lastSeen()));
      } catch (err) {
        this.warn(glue.t('errors.store', { error: (err as Error).message }));
      }
    };
    glue.every(60_000, saveSeen);

    let noDevice = 0;
    const status = glue.status(() => {
      const active = engine.list({ state: 'active' }).length;
      return {
        fill: active ? 'red' : 'green',
        shape: 'dot',
        key: noDevice ? 'status.countsRefused' : 'status.counts',
        vars: { active, devices: engine.deviceCount, noDevice },
      };
    });
    status.update();

    const announce = (transitions: readonly Transition[], send: Send): void => {
      if (transitions.length === 0) return;
      const notes: NodeMessage[] = [];
      const points: NodeMessage[] = [];
      for (const t of transitions) {
        alarmTransitionsTotal.labels(t.transition, t.alarm.severity).inc();
        notes.push({
          topic: `alarms/${t.alarm.device}/${t.alarm.rule}`,
          payload: { ...t.alarm, transition: t.transition, from: t.from, to: t.to, at: t.at },
        });
        points.push({ payload: alarmPoint(t) });
      }
      updateActiveGauge();
      status.update();
      send([notes, points, null]);
    };

    // Device types changed in the registry: the same store under the new rules; alarms of rules that
    // remain keep their slots, in-progress durations and windows start over.
    const onTypes = (): void => {
      let rules: Rule[];
      try {
        rules = allRules();
      } catch (err) {
        this.error(glue.t('errors.config', { error: (err as Error).message }));
        return;
      }
      const seen = engine.lastSeen();
      engines.delete(engine);
      engine.close();
      engine = new AlarmEngine(rules, { maxDevices, store });
      engine.restoreLastSeen(seen);
      engines.add(engine);
      updateActiveGauge();
      status.update();
    };
    if (directory) glue.listen(directory)('types', onTypes);

    glue.every(numberSetting(config.tickS, { fallback: 5, above: 0 }) * 1000, () => {
      try {
        announce(engine.tick(Date.now()), (m) => this.send(m));
      } catch (err) {
        this.error(glue.t('errors.store', { error: (err as Error).message }));
      }
    });
    glue.every(10_000, () => {
      if (!engine.dirty) return;
      try {
        engine.flush();
      } catch (err) {
        this.warn(glue.t('errors.store', { error: (err as Error).message }));
      }
    });

    /** One reading of a message; `i` is the element of a batch, or -1 for a single reading. */
    const judge = (msg: Msg, fields: unknown, i: number, bad: boolean, send: Send) => {
      const device = i < 0 ? msg.device : batchElement(msg.device, i);
      const id = isObject(device) ? device.id : undefined;
      if (typeof id !== 'string' || id === '') {
        noDevice++;
        rejectedTotal.labels('alarm', 'NO_DEVICE').inc();
        return;
      }
      const type = isObject(device) && typeof device.type === 'string' ? device.type : '';
      const given =
        isObject(fields) && typeof fields.ts === 'number'
          ? fields.ts
          : i < 0
            ? msg.timestamp
            : batchElement(msg.timestamp, i);
      const ts = typeof given === 'number' && Number.isFinite(given) ? given : Date.now();
      const quality = i < 0 ? msg.quality : batchElement(msg.quality, i);
      const flagged = bad || (isObject(quality) && Object.keys(quality).length > 0);
      announce(engine.reading(id, type, ts, isObject(fields) ? fields : EMPTY, flagged), send);
    };

    this.on('input', (msg: Msg, send, done) => {
      try {
        if (typeof msg.topic === 'string' && msg.topic.startsWith('alarms/')) {
          const answer = control(msg);
          if (answer) {
            send([null, null, answer]);
            return done();
          }
        }
        const rejected = msg.rejection !== undefined;
        if (Array.isArray(msg.payload) && !rejected)
          msg.payload.forEach((el, i) => judge(msg, el, i, false, send));
        else if (Array.isArray(msg.device))
          // A refused micro-batch: each element is one bad reading of its own device.
          msg.device.forEach((_d, i) => judge(msg, EMPTY, i, true, send));
        else judge(msg, rejected ? EMPTY : msg.payload, -1, rejected, send);
        status.update();
        done();
      } catch (err) {
        done(err as Error); // the store could not make a transition durable (disk full)
      }
    });

    /** Answers an API message: msg.payload is the answer, msg.statusCode the HTTP status. */
    const control = (msg: Msg): Msg | undefined => {
      const id =
        typeof msg.alarmId === 'string' || typeof msg.alarmId === 'number' ? String(msg.alarmId) : '';
      const user =
        typeof msg.user === 'string'
          ? msg.user
          : typeof msg.operator?.apiKeyId === 'string'
            ? `apiKey:${msg.operator.apiKeyId}`
            : 'flow';
      const fail = (status: number, code: string, reason: string): Msg => {
        msg.statusCode = status;
        msg.payload = { code, reason };
        return msg;
      };
      const manual = (r: ManualResult): Msg => {
        if (!('transition' in r)) return fail(r.code === 'NOT_FOUND' ? 404 : 409, r.code, r.reason);
        announce([r], (m) => this.send(m));
        msg.statusCode = 200;
        msg.payload = r.alarm;
        return msg;
      };
      switch (msg.topic) {
        case 'alarms/list': {
          const f = isObject(msg.filter) ? msg.filter : {};
          const filter: AlarmFilter = {};
          for (const key of ['state', 'device', 'severity', 'rule'] as const) {
            const v = f[key];
            if (v === undefined || v === '') continue;
            if (typeof v !== 'string') return fail(400, 'BAD_FILTER', `${key} must be text`);
            (filter as Record<string, string>)[key] = v;
          }
          if (filter.state && !['open', 'active', ...ALARM_STATES].includes(filter.state))
            return fail(400, 'BAD_FILTER', `state must be open, active or one of ${ALARM_STATES.join(', ')}`);
          if (filter.severity && !SEVERITIES.includes(filter.severity))
            return fail(400, 'BAD_FILTER', `severity must be one of ${SEVERITIES.join(', ')}`);
          const limit = f.limit === undefined || f.limit === '' ? 1000 : Number(f.limit);
          if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
            return fail(400, 'BAD_FILTER', 'limit must be a whole number from 1 to 10000');
          msg.statusCode = 200;
          msg.payload = engine
            .list(filter)
            .sort((a: Alarm, b: Alarm) => b.startTs - a.startTs)
            .slice(0, limit);
          return msg;
        }
        case 'alarms/get': {
          const alarm = engine.get(id);
          if (!alarm) return fail(404, 'NOT_FOUND', `no alarm ${id}`);
          msg.statusCode = 200;
          msg.payload = alarm;
          return msg;
        }
        case 'alarms/alertmanager': {
          // Alertmanager's webhook body: { alerts: [{ status, labels: { alertname, severity, device? }, annotations }] }
          const alerts = isObject(msg.payload) ? msg.payload.alerts : undefined;
          if (!Array.isArray(alerts) || alerts.length > 1000)
            return fail(400, 'BAD_WEBHOOK', 'expected an Alertmanager webhook body with at most 1000 alerts');
          let accepted = 0;
          for (const alert of alerts) {
            if (!isObject(alert) || !isObject(alert.labels) || typeof alert.labels.alertname !== 'string')
              continue;
            const { labels } = alert;
            const severity = SEVERITIES.find((s) => s === labels.severity) ?? 'indeterminate';
            const device = typeof labels.device === 'string' ? labels.device : 'backend';
            const summary = isObject(alert.annotations) ? alert.annotations.summary : undefined;
            const values = { ...(typeof summary === 'string' ? { summary } : {}), instance: labels.instance };
            announce(
              engine.external(
                device,
                labels.alertname as string,
                severity,
                alert.status === 'firing',
                Date.now(),
                values,
              ),
              (m) => this.send(m),
            );
            accepted++;
          }
          msg.statusCode = 200;
          msg.payload = { accepted };
          return msg;
        }
        case 'alarms/ack':
          return manual(engine.ack(id, user, Date.now()));
        case 'alarms/clear':
          return manual(engine.clear(id, user, Date.now()));
        default:
          return undefined; // an ordinary reading whose topic happens to start with alarms/
      }
    };
  }
  RED.nodes.registerType('iotb-alarm', AlarmNode);

  // The editor checks rules with the runtime's own validation while they are typed.
  RED.httpAdmin.post(
    '/iotb-alarm/validate',
    RED.auth.needsPermission('iotb-alarm.write'),
    (req: { body?: { rules?: unknown } }, res: { json(body: unknown): void }) => {
      try {
        const rules = compileRules(req.body?.rules ?? []);
        res.json({ rules: rules.length, summaries: rules.map((r) => `${r.name}: ${r.summary}`) });
      } catch (err) {
        res.json({ error: (err as Error).message });
      }
    },
  );
};
