import { FALSE, TRUE, UNKNOWN, type CompiledCondition, type Truth } from './condition';
import {
  ackedState,
  clearedState,
  isActive,
  type Alarm,
  type AlarmState,
  type Transition,
  type TransitionKind,
  type Values,
} from './alarm';
import type { Rule } from './rules';
import type { AlarmStore } from './store';
import type { Severity } from './rules';

/**
 * What the engine remembers per (device, rule) between readings; kept small (no open alarm: about a hundred
 * bytes). The `w*` slots hold the kind's window:
 * - absence, fleet: w0 last reading time;
 * - rate: w0/w1 time/value of the anchor reading, w2/w3 of the reading half a window later;
 * - quality: w0 window start, w1/w2 readings/bad in this window, w3/w4 in the previous one;
 * - fleet: w1 1 while the device is a member (meets the member condition or is silent).
 */
class RuleState {
  /** Since when the condition being waited for (raise when idle, clear when active) holds; -1 not holding. */
  since = -1;
  /** Consecutive readings it has held. */
  held = 0;
  /** The raise condition held at the last evaluation (a new episode while active counts as a re-raise). */
  raising = false;
  alarm: Alarm | undefined = undefined;
  w0 = -1;
  w1 = 0;
  w2 = 0;
  w3 = 0;
  w4 = 0;
}

/**
 * Sizes on 64-bit V8, for `stateBytes`: a RuleState is a 24-byte header, 9 in-object fields and a 16-byte box
 * for each of its 6 fields that hold doubles; a device costs its Map entry with room to grow (48) and id string
 * header (16), its DeviceEntry (40) and its states array (48 + 8 per rule).
 */
const RULE_STATE_BYTES = 24 + 9 * 8 + 6 * 16;
const DEVICE_BYTES = 48 + 16 + 40 + 48;

interface DeviceEntry {
  type: string;
  /** Parallel to the engine's rules: undefined where a rule is not for this device's type. */
  states: (RuleState | undefined)[];
}

interface FleetState {
  state: RuleState;
  devices: number;
  members: number;
}

export interface AlarmEngineOptions {
  store?: AlarmStore;
  /** Devices tracked at most; readings of further devices are counted in `untracked` and not judged. */
  maxDevices?: number;
}

export interface AlarmFilter {
  state?: AlarmState | 'open' | 'active';
  device?: string;
  severity?: Severity;
  rule?: string;
}

export type ManualResult =
  Transition | { code: 'NOT_FOUND' | 'ALREADY_ACKED' | 'ALREADY_CLEARED'; reason: string };

const NONE: readonly Transition[] = [];
const EXTERNAL_RULE: Rule = {
  name: '',
  kind: 'external',
  severity: 'major',
  deviceType: '',
  raiseForMs: 0,
  raiseForReadings: 0,
  clearForMs: 0,
  clearForReadings: 0,
  field: '',
  windowMs: 0,
  minReadings: 0,
  silentMs: 0,
  summary: '',
};
const FLEET_PREFIX = 'fleet:';

/**
 * Evaluates alarm rules over readings and drives each alarm's lifecycle (alarm.ts). Node-RED-free; every
 * method takes the time, so tests run on an injected clock. Readings are judged by their own timestamp
 * (durations, windows); absence and fleet rules are judged by `tick(now)`.
 * At most one active alarm per (device, rule): while one is active, the raise condition updates it.
 */
export class AlarmEngine {
  /** Open alarms (not both cleared and acknowledged) and the recently closed ones, by id. */
  private readonly alarms = new Map<string, Alarm>();
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly rulesByType = new Map<string, number[]>();
  private readonly fleets: (FleetState | undefined)[];
  /** Slots of external alarms, by device and alert name. */
  private readonly externals = new Map<string, RuleState>();
  private readonly store: AlarmStore | undefined;
  private readonly maxDevices: number;
  private nextId = 1;
  private out: Transition[] = [];
  /** Alarms changed by the current call, written to the store before its transitions are returned. */
  private readonly unsaved: Alarm[] = [];
  /** Readings of devices beyond maxDevices. */
  untracked = 0;
  /** Counts or last values changed since the last `flushed()`. */
  dirty = false;

  constructor(
    readonly rules: readonly Rule[],
    opts: AlarmEngineOptions = {},
  ) {
    this.store = opts.store;
    this.maxDevices = opts.maxDevices ?? 100_000;
    this.fleets = rules.map((r) =>
      r.kind === 'fleet' ? { state: new RuleState(), devices: 0, members: 0 } : undefined,
    );
    for (const a of this.store?.load() ?? []) this.restore(a);
  }

  get deviceCount(): number {
    return this.devices.size;
  }

  /**
   * Bytes of the per-device and per-(device, rule) state: an upper estimate from what is held (sizes above)
   * that does not depend on when the garbage collector runs. Open alarms are not included. O(devices).
   */
  get stateBytes(): number {
    let bytes = 0;
    for (const [id, entry] of this.devices) {
      bytes += DEVICE_BYTES + id.length + 8 * entry.states.length;
      for (const s of entry.states) if (s) bytes += RULE_STATE_BYTES;
    }
    return bytes;
  }

  /**
   * Judges one reading of `device` at `ts`. `fields` is the reading; `bad` says it was flagged or rejected
   * (quality rules). Returns the transitions it caused: a reused array, read it before the next call.
   */
  reading(device: string, type: string, ts: number, fields: Readonly<Record<string, unknown>>, bad = false) {
    const entry = this.entry(device, type);
    if (!entry) return NONE;
    this.out.length = 0;
    const { states } = entry;
    for (let i = 0; i < states.length; i++) {
      const s = states[i];
      if (s === undefined) continue;
      const rule = this.rules[i];
      switch (rule.kind) {
        case 'threshold':
          this.evaluate(rule, s, device, entry.type, ts, fields, fields);
          break;
        case 'absence':
          if (ts > s.w0) s.w0 = ts;
          if (s.alarm) this.clearBy(s, ts, { lastSeen: ts });
          break;
        case 'rate':
          this.rate(rule, s, device, entry.type, ts, fields);
          break;
        case 'quality':
          this.quality(rule, s, device, entry.type, ts, bad);
          break;
        case 'fleet':
          this.fleetMember(i, rule, s, ts, fields);
          break;
      }
    }
    return this.persisted();
  }

  /** Judges the rules that time alone can decide: absence (silent devices) and fleet shares. */
  tick(now: number): readonly Transition[] {
    this.out.length = 0;
    const absence = this.rules.some((r) => r.kind === 'absence' || (r.kind === 'fleet' && r.silentMs > 0));
    if (absence) {
      for (const [device, entry] of this.devices) {
        for (let i = 0; i < entry.states.length; i++) {
          const s = entry.states[i];
          const rule = this.rules[i];
          if (s === undefined || s.w0 < 0) continue;
          const silentFor = now - s.w0;
          if (rule.kind === 'absence' && !s.alarm && silentFor >= rule.silentMs)
            this.raise(rule, s, device, entry.type, now, {
              lastSeen: s.w0,
              silentS: Math.round(silentFor / 1000),
            });
          else if (rule.kind === 'fleet' && rule.silentMs > 0 && !rule.member)
            this.setMember(i, s, silentFor >= rule.silentMs);
        }
      }
    }
    for (let i = 0; i < this.rules.length; i++) {
      const fleet = this.fleets[i];
      if (!fleet || fleet.devices === 0) continue;
      const rule = this.rules[i];
      const values = {
        share: fleet.members / fleet.devices,
        count: fleet.members,
        devices: fleet.devices,
      };
      this.evaluate(rule, fleet.state, FLEET_PREFIX + rule.deviceType, rule.deviceType, now, values, values);
    }
    return this.persisted();
  }

  /**
   * An alarm decided elsewhere (an Alertmanager webhook): `firing` raises it once, its resolution clears it.
   * It has the same lifecycle and API as the rules' alarms; `rule` is the alert's name.
   */
  external(device: string, rule: string, severity: Severity, firing: boolean, ts: number, values: Values) {
    this.out.length = 0;
    const key = `${device}\u0000${rule}`;
    let s = this.externals.get(key);
    if (!s) this.externals.set(key, (s = new RuleState()));
    const r: Rule = {
      ...EXTERNAL_RULE,
      name: rule,
      severity,
      summary: typeof values.summary === 'string' ? values.summary : rule,
    };
    if (firing && !s.alarm) this.raise(r, s, device, '', ts, values);
    else if (firing && s.alarm) {
      s.alarm.lastTs = ts;
      s.alarm.lastValues = values;
      this.dirty = true;
    } else if (!firing && s.alarm) this.clearBy(s, ts, values);
    return this.persisted();
  }

  /** Acknowledges alarm `id` for `user`. */
  ack(id: string, user: string, now: number): ManualResult {
    const alarm = this.alarms.get(id);
    if (!alarm) return { code: 'NOT_FOUND', reason: `no alarm ${id}` };
    const next = ackedState(alarm.state);
    if (!next)
      return { code: 'ALREADY_ACKED', reason: `alarm ${id} was acknowledged by ${alarm.ackBy ?? '?'}` };
    alarm.ackTs = now;
    alarm.ackBy = user;
    const t = this.step(alarm, 'acknowledged', next, now);
    this.persisted();
    return t;
  }

  /** Clears alarm `id` by hand; the rule raises it again only after its condition holds anew. */
  clear(id: string, user: string, now: number): ManualResult {
    const alarm = this.alarms.get(id);
    if (!alarm) return { code: 'NOT_FOUND', reason: `no alarm ${id}` };
    const next = clearedState(alarm.state);
    if (!next) return { code: 'ALREADY_CLEARED', reason: `alarm ${id} is already cleared` };
    const s = this.slotOf(alarm);
    if (s?.alarm === alarm) {
      s.alarm = undefined;
      s.since = -1;
      s.held = 0;
      s.raising = false;
      if (alarm.kind === 'absence') s.w0 = now; // silent again for a full period before the next raise
    }
    alarm.clearTs = now;
    alarm.clearedBy = user;
    const t = this.step(alarm, 'cleared', next, now);
    this.persisted();
    return t;
  }

  get(id: string): Alarm | undefined {
    return this.alarms.get(id);
  }

  list(filter: AlarmFilter = {}): Alarm[] {
    const result: Alarm[] = [];
    for (const a of this.alarms.values()) {
      if (
        filter.state === 'open'
          ? a.state === 'CLEARED_ACK'
          : filter.state === 'active'
            ? !isActive(a.state)
            : filter.state && a.state !== filter.state
      )
        continue;
      if (filter.device !== undefined && a.device !== filter.device) continue;
      if (filter.severity !== undefined && a.severity !== filter.severity) continue;
      if (filter.rule !== undefined && a.rule !== filter.rule) continue;
      result.push(a);
    }
    return result;
  }

  /** Active alarms by severity, for the gauge. */
  activeBySeverity(): Record<Severity, number> {
    const counts: Record<Severity, number> = {
      critical: 0,
      major: 0,
      minor: 0,
      warning: 0,
      indeterminate: 0,
    };
    for (const a of this.alarms.values()) if (isActive(a.state)) counts[a.severity]++;
    return counts;
  }

  /**
   * Last reading time per device for absence rules: `[type, time]` by device. Kept beside the alarm store so
   * a device that never speaks again after a restart is still reported silent.
   */
  lastSeen(): Record<string, [string, number]> {
    const seen: Record<string, [string, number]> = {};
    for (const [device, entry] of this.devices) {
      let last = -1;
      for (let i = 0; i < entry.states.length; i++) {
        const s = entry.states[i];
        if (s && this.rules[i].kind === 'absence' && s.w0 > last) last = s.w0;
      }
      if (last >= 0) seen[device] = [entry.type, last];
    }
    return seen;
  }

  /** Takes back what `lastSeen()` returned before a restart; later readings win. */
  restoreLastSeen(seen: Record<string, unknown>): void {
    for (const [device, v] of Object.entries(seen)) {
      if (!Array.isArray(v) || typeof v[0] !== 'string' || typeof v[1] !== 'number') continue;
      const entry = this.entry(device, v[0]);
      if (!entry) return; // maxDevices reached: the rest cannot be tracked either
      for (let i = 0; i < entry.states.length; i++) {
        const s = entry.states[i];
        if (s && this.rules[i].kind === 'absence' && s.w0 < v[1]) s.w0 = v[1];
      }
    }
  }

  /** Writes counts and last values of active alarms (they change without a transition). */
  flush(): void {
    this.store?.flush();
    this.dirty = false;
    this.pruneClosed();
  }

  close(): void {
    this.store?.close();
  }

  private entry(device: string, type: string): DeviceEntry | undefined {
    let entry = this.devices.get(device);
    if (entry && (entry.type === type || type === '')) return entry;
    if (!entry && this.devices.size >= this.maxDevices) {
      this.untracked++;
      return undefined;
    }
    const states = this.ruleIndexes(type).reduce<(RuleState | undefined)[]>((list, i) => {
      // A device whose type changed keeps the alarms of rules that still apply.
      list[i] = entry?.states[i] ?? new RuleState();
      return list;
    }, new Array<RuleState | undefined>(this.rules.length).fill(undefined));
    if (entry) for (let i = 0; i < states.length; i++) if (!states[i]) this.leaveFleet(i, entry.states[i]);
    entry = { type, states };
    this.devices.set(device, entry);
    for (let i = 0; i < states.length; i++) {
      const fleet = this.fleets[i];
      const s = states[i];
      if (fleet && s && s.w0 < 0) fleet.devices++;
    }
    return entry;
  }

  private ruleIndexes(type: string): number[] {
    let list = this.rulesByType.get(type);
    if (!list) {
      list = [];
      for (let i = 0; i < this.rules.length; i++) {
        const t = this.rules[i].deviceType;
        if (t === '' || t === type) list.push(i);
      }
      this.rulesByType.set(type, list);
    }
    return list;
  }

  /** The common step of every kind: raise after the raise condition held long enough, clear likewise. */
  private evaluate(
    rule: Rule,
    s: RuleState,
    device: string,
    type: string,
    ts: number,
    record: Readonly<Record<string, unknown>>,
    values: Values,
  ): void {
    const raiseWhen = rule.raise;
    if (raiseWhen === undefined) return; // only absence and external rules have none; neither comes here
    const raise = raiseWhen.test(record);
    if (raise === UNKNOWN) return; // the reading does not carry what this rule judges
    if (!s.alarm) {
      s.raising = raise === TRUE;
      if (!this.holds(s, raise === TRUE, ts, rule.raiseForMs, rule.raiseForReadings)) return;
      this.raise(rule, s, device, type, ts, pick(raiseWhen, values));
      return;
    }
    if (raise === TRUE) {
      const alarm = s.alarm;
      if (!s.raising) alarm.count++;
      alarm.lastTs = ts;
      alarm.lastValues = pick(raiseWhen, values);
      this.dirty = true;
    }
    s.raising = raise === TRUE;
    const clear: Truth = rule.clear ? rule.clear.test(record) : raise === TRUE ? FALSE : TRUE;
    if (!this.holds(s, clear === TRUE, ts, rule.clearForMs, rule.clearForReadings)) return;
    this.clearBy(s, ts, pick(rule.clear ?? raiseWhen, values));
  }

  /** Counts how long a condition has held; true once it has held `forMs` and `forReadings` readings. */
  private holds(s: RuleState, holding: boolean, ts: number, forMs: number, forReadings: number): boolean {
    if (!holding) {
      s.since = -1;
      s.held = 0;
      return false;
    }
    if (s.since < 0) s.since = ts;
    s.held++;
    return ts - s.since >= forMs && s.held >= forReadings;
  }

  private rate(
    rule: Rule,
    s: RuleState,
    device: string,
    type: string,
    ts: number,
    fields: Readonly<Record<string, unknown>>,
  ): void {
    const v = fields[rule.field];
    if (typeof v !== 'number' || !Number.isFinite(v) || ts < s.w0) return;
    const half = rule.windowMs / 2;
    if (s.w0 < 0) {
      s.w0 = s.w2 = ts;
      s.w1 = s.w3 = v;
      return;
    }
    if (ts - s.w2 >= half) {
      s.w0 = s.w2;
      s.w1 = s.w3;
      s.w2 = ts;
      s.w3 = v;
    }
    if (ts - s.w0 < half) return; // too short a span to call it a trend
    const rate = ((v - s.w1) / (ts - s.w0)) * 60_000;
    const values = { rate, [rule.field]: v };
    this.evaluate(rule, s, device, type, ts, values, values);
  }

  private quality(rule: Rule, s: RuleState, device: string, type: string, ts: number, bad: boolean): void {
    const w = rule.windowMs;
    if (s.w0 < 0) s.w0 = ts;
    if (ts < s.w0) return; // older than the window: already counted out
    if (ts - s.w0 >= 2 * w) {
      s.w0 = ts;
      s.w1 = s.w2 = s.w3 = s.w4 = 0;
    } else if (ts - s.w0 >= w) {
      s.w0 += w;
      s.w3 = s.w1;
      s.w4 = s.w2;
      s.w1 = s.w2 = 0;
    }
    s.w1++;
    if (bad) s.w2++;
    // Sliding window from two fixed ones: the previous window weighs by how much of it is still inside.
    const weight = 1 - (ts - s.w0) / w;
    const readings = s.w3 * weight + s.w1;
    if (readings < rule.minReadings) return;
    const share = (s.w4 * weight + s.w2) / readings;
    const values = { share, readings: Math.round(readings) };
    this.evaluate(rule, s, device, type, ts, values, values);
  }

  private fleetMember(
    i: number,
    rule: Rule,
    s: RuleState,
    ts: number,
    fields: Readonly<Record<string, unknown>>,
  ): void {
    if (ts > s.w0) s.w0 = ts;
    if (rule.member) {
      const m = rule.member.test(fields);
      if (m !== UNKNOWN) this.setMember(i, s, m === TRUE);
    } else this.setMember(i, s, false); // a reading: not silent
  }

  private setMember(i: number, s: RuleState, member: boolean): void {
    const fleet = this.fleets[i];
    if (!fleet || member === (s.w1 === 1)) return;
    s.w1 = member ? 1 : 0;
    fleet.members += member ? 1 : -1;
  }

  private leaveFleet(i: number, s: RuleState | undefined): void {
    const fleet = this.fleets[i];
    if (!fleet || !s) return;
    fleet.devices--;
    if (s.w1 === 1) fleet.members--;
  }

  private raise(rule: Rule, s: RuleState, device: string, type: string, ts: number, values: Values): void {
    const alarm: Alarm = {
      id: String(this.nextId++),
      device,
      deviceType: type,
      rule: rule.name,
      kind: rule.kind,
      severity: rule.severity,
      state: 'ACTIVE_UNACK',
      summary: rule.summary,
      count: 1,
      startTs: ts,
      lastTs: ts,
      raiseValues: values,
      lastValues: values,
    };
    s.alarm = alarm;
    s.since = -1;
    s.held = 0;
    s.raising = true;
    this.alarms.set(alarm.id, alarm);
    this.out.push(this.step(alarm, 'raised', 'ACTIVE_UNACK', ts, null));
  }

  private clearBy(s: RuleState, ts: number, values: Values): void {
    const alarm = s.alarm;
    if (!alarm) return;
    const to = clearedState(alarm.state);
    if (!to) return; // a slot holds only active alarms (a manual clear empties it)
    s.alarm = undefined;
    s.since = -1;
    s.held = 0;
    s.raising = false;
    alarm.clearTs = ts;
    alarm.clearValues = values;
    this.out.push(this.step(alarm, 'cleared', to, ts));
  }

  /** Moves `alarm` to `to`, durable before anyone hears of it. */
  private step(
    alarm: Alarm,
    kind: TransitionKind,
    to: AlarmState,
    at: number,
    from: AlarmState | null = alarm.state,
  ): Transition {
    alarm.state = to;
    this.unsaved.push(alarm);
    return { transition: kind, from, to, at, alarm: { ...alarm } };
  }

  /**
   * Makes this call's transitions durable in one write (a tick that finds 10,000 devices silent costs one
   * fdatasync, not 10,000), then hands them out.
   */
  private persisted(): readonly Transition[] {
    if (this.unsaved.length) {
      try {
        this.store?.put(this.unsaved);
      } finally {
        this.unsaved.length = 0;
      }
    }
    return this.out.length ? this.out : NONE;
  }

  /** The rule that raised `alarm`: same name, for its device's type (rules of several types may share a name). */
  private ruleOf(alarm: Alarm): number {
    return this.rules.findIndex(
      (r) => r.name === alarm.rule && (r.deviceType === '' || r.deviceType === alarm.deviceType),
    );
  }

  private slotOf(alarm: Alarm): RuleState | undefined {
    if (alarm.kind === 'external') return this.externals.get(`${alarm.device}\u0000${alarm.rule}`);
    const i = this.ruleOf(alarm);
    if (i < 0) return undefined;
    if (this.rules[i].kind === 'fleet') return this.fleets[i]?.state;
    return this.devices.get(alarm.device)?.states[i];
  }

  /** Puts a stored alarm back; an active one takes its (device, rule) slot again so it is not raised twice. */
  private restore(alarm: Alarm): void {
    this.alarms.set(alarm.id, alarm);
    const n = Number(alarm.id);
    if (Number.isInteger(n) && n >= this.nextId) this.nextId = n + 1;
    if (!isActive(alarm.state)) return;
    if (alarm.kind === 'external') {
      const s = new RuleState();
      s.alarm = alarm;
      this.externals.set(`${alarm.device}\u0000${alarm.rule}`, s);
      return;
    }
    const i = this.ruleOf(alarm);
    if (i < 0) return; // the rule is gone: the alarm stays until someone clears it
    const rule = this.rules[i];
    let s: RuleState | undefined;
    if (rule.kind === 'fleet') s = this.fleets[i]?.state;
    else {
      const entry = this.entry(alarm.device, alarm.deviceType);
      s = entry?.states[i];
      if (s && rule.kind === 'absence') s.w0 = alarm.lastTs;
    }
    if (!s || s.alarm) return;
    s.alarm = alarm;
    s.raising = true;
  }

  /** Closed alarms stay in memory only as long as the store keeps them. */
  private pruneClosed(): void {
    const limit = 1000;
    let closed = 0;
    for (const a of this.alarms.values()) if (a.state === 'CLEARED_ACK') closed++;
    if (closed <= limit) return;
    for (const [id, a] of this.alarms) {
      if (closed <= limit) break;
      if (a.state === 'CLEARED_ACK') {
        this.alarms.delete(id);
        closed--;
      }
    }
  }
}

function pick(cond: CompiledCondition, values: Values): Values {
  const picked: Values = {};
  for (const f of cond.fields) if (f in values) picked[f] = values[f];
  return picked;
}
