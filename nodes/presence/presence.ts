import { existsSync, readFileSync } from 'node:fs';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { writeFileAtomicSync } from '../lib/atomic-file';
import { gauge } from '../lib/metrics';
import { PresenceTracker, type PresenceChange } from '../lib/presence';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface PresenceNodeDef extends NodeDef {
  broker?: string;
  heartbeatTimeoutS: number | string;
}

const onlineGauge = gauge('iotb_presence_online_devices', 'Devices online by the presence node', [
  'node',
] as const);

/**
 * iotb-presence: online/offline and last-seen per device, from broker sessions and from any message that
 * carries `msg.device`, with a heartbeat timeout for devices without a session. Last-seen survives restarts.
 */
export = function register(RED: NodeAPI): void {
  function PresenceNode(this: Node, config: PresenceNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const timeoutMs = numberSetting(config.heartbeatTimeoutS, { fallback: 120, above: 0 }) * 1000;
    const tracker = new PresenceTracker(timeoutMs);
    const stateFile = glue.stateFile('presence', '.json', [glue.userFile(`iotb-presence-${this.id}.json`)]);
    if (existsSync(stateFile)) {
      try {
        tracker.restore(
          JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, { lastSeen?: unknown }>,
        );
      } catch (err) {
        this.warn(glue.t('warn.corruptState', { file: stateFile, message: (err as Error).message }));
      }
    }
    const save = (): void => {
      try {
        writeFileAtomicSync(stateFile, JSON.stringify(tracker.snapshot()));
      } catch (err) {
        this.warn(glue.t('warn.saveFailed', { file: stateFile, message: (err as Error).message }));
      }
    };
    glue.onClose(save);

    const status = glue.status(() => {
      onlineGauge.labels(this.id).set(tracker.online);
      return {
        fill: 'green',
        shape: 'dot',
        key: 'status.online',
        vars: { online: tracker.online, known: tracker.size },
      };
    });
    const emit = (change: PresenceChange | undefined): void => {
      if (!change) return;
      status.update();
      this.send([null, { topic: `devices/${change.deviceId}/presence`, payload: change }]);
    };

    const link = glue.optionalConfig('broker', config.broker);
    if (link) {
      const on = glue.listen(link);
      on('online', (id: string) => emit(tracker.connected(id, Date.now())));
      on('offline', (id: string) => emit(tracker.disconnected(id, Date.now())));
    }
    glue.every(Math.max(1000, Math.min(timeoutMs / 4, 30_000)), () => {
      for (const change of tracker.sweep(Date.now())) emit(change);
    });
    glue.every(60_000, save);
    status.update();

    this.on('input', (msg: NodeMessageInFlow & { device?: unknown; deviceId?: unknown }, send, done) => {
      if (msg.topic === 'presence/get') {
        const id = typeof msg.deviceId === 'string' ? msg.deviceId : undefined;
        msg.payload =
          id === undefined
            ? tracker.snapshot()
            : (tracker.get(id) ?? { online: false, lastSeen: 0, connected: false });
        send([msg, null]);
        done();
        return;
      }
      for (const change of tracker.seenIn(msg.device, Date.now())) emit(change);
      send([msg, null]);
      done();
    });
  }
  RED.nodes.registerType('iotb-presence', PresenceNode);
};
