import { randomBytes } from 'node:crypto';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { CommandDispatcher, type DispatcherOptions } from '../lib/commands/dispatcher';
import { MqttDeviceLink } from '../lib/commands/mqtt-link';
import { LIST_LIMIT, stateFilter } from '../lib/commands/queries';
import type { CommandRecord } from '../lib/commands/states';
import type { DeviceLink } from '../lib/device-contracts';
import { RejectionError, rejection, refuseMessage } from '../lib/rejection';
import { credentialsOf, NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';

interface CommandNodeDef extends NodeDef {
  registry: string;
  /** 'broker': the embedded iotb-broker; 'mqtt': an external MQTT broker at `url`. */
  transport: 'broker' | 'mqtt';
  broker?: string;
  url?: string;
  protocol?: 'auto' | '5' | '4';
  prefix?: string;
  timeoutMs: number | string;
  ttlMs: number | string;
  queueBound: number | string;
  ratePerSecond: number | string;
}

interface CommandCredentials {
  username?: string;
  password?: string;
}

type Msg = NodeMessageInFlow & Record<string, unknown>;

/** Timeouts, the queue bound and the rate are positive numbers. */
const positive = (value: unknown, fallback: number): number => numberSetting(value, { fallback, above: 0 });

/** The parts of a command a flow sees: what the `commands` measurement and `GET /api/commands/{id}` need. */
function view(r: CommandRecord): Record<string, unknown> {
  return {
    id: r.id,
    deviceId: r.deviceId,
    name: r.name,
    params: r.params,
    state: r.state,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    attempts: r.attempts,
    history: r.history,
    ...(r.result !== undefined ? { result: r.result } : {}),
    ...(r.error !== undefined ? { error: r.error } : {}),
  };
}

/** The device a message is about: `msg.deviceId`, else the authenticated `msg.device.id`. */
function deviceIdOf(msg: Msg): unknown {
  return msg.deviceId ?? (msg.device as { id?: unknown } | undefined)?.id;
}

/** The command a cancel or get is about: `msg.id`, else `msg.payload.id`. */
function commandIdOf(msg: Msg): unknown {
  return typeof msg.id === 'string' ? msg.id : (msg.payload as { id?: unknown } | undefined)?.id;
}

/** `payload: true | false | { on, reason, by }` -> the switch request. */
function switchRequest(msg: Msg): { on: boolean; reason?: string; by?: string } | undefined {
  const p = msg.payload;
  if (typeof p === 'boolean') return { on: p };
  if (p && typeof p === 'object' && typeof (p as { on?: unknown }).on === 'boolean') {
    const { on, reason, by } = p as { on: boolean; reason?: unknown; by?: unknown };
    return {
      on,
      ...(typeof reason === 'string' ? { reason: reason.slice(0, 500) } : {}),
      ...(typeof by === 'string' ? { by: by.slice(0, 200) } : {}),
    };
  }
  return undefined;
}

/**
 * iotb-command: sends commands to devices and follows each to one final state. The rules live in
 * nodes/lib/commands; this glue reads the config, routes messages and shows the status.
 */
export = function register(RED: NodeAPI): void {
  function CommandNode(this: Node<CommandCredentials>, config: CommandNodeDef): void {
    RED.nodes.createNode(this, config);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handlers below are arrow functions over it
    const node = this;
    const glue = new NodeGlue(RED, node);
    const rejected = { stage: 'command', outputs: 3 } as const;
    const directory = glue.requireConfig('registry', config.registry, rejected);
    if (!directory) return;

    let link: DeviceLink | undefined;
    let ownLink: MqttDeviceLink | undefined;
    if (config.transport !== 'mqtt') link = glue.requireConfig('broker', config.broker, rejected);
    else if (!config.url) glue.cannotWork(glue.t('error.noUrl'), 'NO_CONFIG', rejected);
    else {
      const credentials = credentialsOf(node);
      ownLink = new MqttDeviceLink({
        url: config.url,
        username: credentials.username || undefined,
        password: credentials.password || undefined,
        clientId: `iotb-command-${node.id}-${randomBytes(3).toString('hex')}`,
        protocol: config.protocol === '4' ? 4 : config.protocol === '5' ? 5 : 'auto',
        prefix: config.prefix || 'devices',
      });
      link = ownLink;
      const closing = ownLink;
      glue.onClose(() => closing.end());
    }
    if (!link) return;

    const options: DispatcherOptions = {
      link,
      directory,
      logFile: glue.stateFile('commands', '.jsonl', [glue.userFile(`iotb-commands-${node.id}.jsonl`)]),
      timeoutMs: positive(config.timeoutMs, 30_000),
      ttlMs: positive(config.ttlMs, 3_600_000),
      queueBound: positive(config.queueBound, 100),
      ratePerSecond: positive(config.ratePerSecond, 5),
    };
    let d: CommandDispatcher;
    try {
      d = new CommandDispatcher(options);
    } catch (err) {
      glue.cannotWork(glue.t('error.store', { message: (err as Error).message }), 'STORE_FAILED', rejected);
      void ownLink?.end();
      return;
    }
    glue.onClose(() => d.close());

    let brokerUp = ownLink ? ownLink.connected : true;
    const status = glue.status((): StatusView => {
      const s = d.stats();
      const safe = d.safeModeDevices.length;
      if (d.killSwitch.on) return { fill: 'red', shape: 'dot', key: 'status.killSwitch' };
      if (!brokerUp) return { fill: 'red', shape: 'ring', key: 'status.disconnected' };
      return {
        fill: safe > 0 ? 'yellow' : 'green',
        shape: 'dot',
        key: safe > 0 ? 'status.activeSafe' : 'status.active',
        vars: { queued: s.queued, inFlight: s.inFlight, safe },
      };
    });
    status.update();
    if (ownLink) {
      // One warning per outage, not one per reconnect attempt; the status shows the rest.
      let warned = false;
      const onLink = glue.listen(ownLink);
      onLink('connect', () => {
        brokerUp = true;
        warned = false;
        status.update();
      });
      onLink('disconnect', () => {
        brokerUp = false;
        status.update();
      });
      onLink('error', (err: Error) => {
        if (warned) return;
        warned = true;
        node.warn(glue.t('warn.broker', { message: err.message }));
      });
    }
    const on = glue.listen(d);

    /** The request message being handled: its QUEUED transition carries the caller's msg (e.g. msg.res). */
    let submitting: Msg | undefined;

    on('transition', (r, step) => {
      const payload = { id: r.id, deviceId: r.deviceId, name: r.name, ...step };
      if (submitting && step.state === 'QUEUED' && r.history.length === 1) {
        const msg = submitting;
        msg.topic = `devices/${r.deviceId}/commands/transition`;
        msg.payload = payload;
        msg.command = view(r);
        node.send([null, msg, null]);
      } else {
        node.send([
          null,
          { topic: `devices/${r.deviceId}/commands/transition`, payload, command: view(r) },
          null,
        ]);
      }
      status.update();
    });
    /** The cancel request being handled: the command's final result then carries the caller's msg. */
    let canceling: Msg | undefined;

    on('final', (r) => {
      const msg: Msg = canceling && commandIdOf(canceling) === r.id ? canceling : ({} as Msg);
      msg.topic = `devices/${r.deviceId}/commands/result`;
      msg.payload = view(r);
      node.send([msg, null, null]);
    });
    on('audit', (a) => {
      node.warn(
        glue.t(a.event === 'kill-switch' ? 'audit.killSwitch' : 'audit.safeMode', {
          on: a.on ? 'ON' : 'OFF',
          deviceId: a.deviceId ?? '',
          by: a.by ?? '?',
          reason: a.reason ?? '',
          canceled: a.canceled,
        }),
      );
      node.send([null, { topic: 'commands/audit', payload: a }, null]);
      status.update();
    });
    on('ignoredAck', (e) => {
      if (e.reason === 'wrong_device')
        node.warn(glue.t('warn.wrongDevice', { id: e.id ?? '', deviceId: e.deviceId }));
    });
    on('error', (err) => node.error(err));

    const refuse = (msg: Msg, code: string, reason: string): void => {
      refuseMessage(msg, rejection('command', code, reason));
      node.send([null, null, msg]);
    };

    node.on('input', (input, send, done) => {
      const msg = input as Msg;
      try {
        switch (msg.topic) {
          case 'kill-switch': {
            const req = switchRequest(msg);
            if (!req)
              refuse(msg, 'INVALID_SWITCH', 'kill-switch needs msg.payload true/false or { on, reason, by }');
            else d.setKillSwitch(req.on, req.reason, req.by);
            break;
          }
          case 'safe-mode': {
            const req = switchRequest(msg);
            const deviceId = deviceIdOf(msg);
            if (!req || typeof deviceId !== 'string' || !directory.getDevice(deviceId))
              refuse(
                msg,
                'INVALID_SWITCH',
                'safe-mode needs a known msg.deviceId and msg.payload true/false or { on }',
              );
            else d.setSafeMode(deviceId, req.on, req.reason, req.by);
            break;
          }
          case 'cancel': {
            const id = commandIdOf(msg);
            const r = typeof id === 'string' ? d.get(id) : undefined;
            if (!r) {
              refuse(msg, 'NOT_FOUND', `no command ${String(id)} is known`);
              break;
            }
            canceling = msg;
            try {
              if (!d.cancel(r.id, 'canceled by request'))
                refuse(
                  msg,
                  'NOT_CANCELABLE',
                  `command ${r.id} is ${r.state}: only a QUEUED command can be canceled`,
                );
            } finally {
              canceling = undefined;
            }
            break;
          }
          case 'list': {
            const deviceId = deviceIdOf(msg);
            if (typeof deviceId !== 'string' || !directory.getDevice(deviceId)) {
              refuse(msg, 'UNKNOWN_DEVICE', `no device ${String(deviceId)} is registered`);
              break;
            }
            const filter = stateFilter(msg.state);
            const commands = d.list(deviceId, filter.accepts, LIST_LIMIT).map(view);
            msg.payload = { deviceId, state: filter.name, commands };
            send([msg, null, null]);
            break;
          }
          case 'kill-switch-state': {
            msg.payload = { killSwitch: d.killSwitch, safeModeDevices: d.safeModeDevices.length };
            send([msg, null, null]);
            break;
          }
          case 'get': {
            const id = commandIdOf(msg);
            const r = typeof id === 'string' ? d.get(id) : undefined;
            if (!r) refuse(msg, 'NOT_FOUND', `no command ${String(id)} is known`);
            else {
              msg.payload = view(r);
              send([msg, null, null]);
            }
            break;
          }
          default: {
            const body = (msg.payload ?? {}) as { name?: unknown; params?: unknown };
            submitting = msg;
            try {
              d.submit({
                deviceId: deviceIdOf(msg),
                name: typeof body === 'object' ? body.name : undefined,
                params: typeof body === 'object' ? body.params : undefined,
                timeoutMs: msg.timeoutMs,
                ttlMs: msg.ttlMs,
                id: msg.id,
              });
            } finally {
              submitting = undefined;
            }
          }
        }
        done();
      } catch (err) {
        if (err instanceof RejectionError) {
          refuseMessage(msg, err.rejection);
          send([null, null, msg]);
          done();
        } else done(err as Error);
      }
      status.update();
    });
  }
  RED.nodes.registerType<Node<CommandCredentials>, CommandNodeDef, unknown, CommandCredentials>(
    'iotb-command',
    CommandNode,
    { credentials: { username: { type: 'text' }, password: { type: 'password' } } },
  );
};
