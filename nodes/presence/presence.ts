import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { writeFileAtomicSync } from '../lib/atomic-file';
import type { DeviceLink } from '../lib/device-contracts';
import { gauge } from '../lib/metrics';
import { PresenceTracker, type PresenceChange } from '../lib/presence';
import { Throttle } from '../lib/throttle';

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
    const timeoutS = Number(config.heartbeatTimeoutS);
    const timeoutMs = (Number.isFinite(timeoutS) && timeoutS > 0 ? timeoutS : 120) * 1000;
    const tracker = new PresenceTracker(timeoutMs);
    const userDir = (RED.settings as { userDir?: string }).userDir ?? process.cwd();
    const stateFile = join(userDir, `iotb-presence-${this.id}.json`);
    if (existsSync(stateFile)) {
      try {
        tracker.restore(
          JSON.parse(readFileSync(stateFile, 'utf8')) as Record<string, { lastSeen?: unknown }>,
        );
      } catch (err) {
        this.warn(
          RED._('iotb-presence.warn.corruptState', { file: stateFile, message: (err as Error).message }),
        );
      }
    }

    const status = new Throttle(() => {
      onlineGauge.labels(this.id).set(tracker.online);
      this.status({
        fill: 'green',
        shape: 'dot',
        text: RED._('iotb-presence.status.online', { online: tracker.online, known: tracker.size }),
      });
    }, 500);
    const emit = (change: PresenceChange | undefined): void => {
      if (!change) return;
      status.call();
      this.send([null, { topic: `devices/${change.deviceId}/presence`, payload: change }]);
    };

    const link = config.broker
      ? (RED.nodes.getNode(config.broker) as (Node & { broker?: DeviceLink }) | null)
      : null;
    const onOnline = (id: string): void => emit(tracker.connected(id, Date.now()));
    const onOffline = (id: string): void => emit(tracker.disconnected(id, Date.now()));
    link?.broker?.on('online', onOnline).on('offline', onOffline);

    const sweeper = setInterval(
      () => {
        for (const change of tracker.sweep(Date.now())) emit(change);
      },
      Math.max(1000, Math.min(timeoutMs / 4, 30_000)),
    );
    const save = (): void => {
      try {
        writeFileAtomicSync(stateFile, JSON.stringify(tracker.snapshot()));
      } catch (err) {
        this.warn(
          RED._('iotb-presence.warn.saveFailed', { file: stateFile, message: (err as Error).message }),
        );
      }
    };
    const saver = setInterval(save, 60_000);
    status.call();

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

    this.on('close', () => {
      clearInterval(sweeper);
      clearInterval(saver);
      status.cancel();
      link?.broker?.off('online', onOnline).off('offline', onOffline);
      save();
    });
  }
  RED.nodes.registerType('iotb-presence', PresenceNode);
};
