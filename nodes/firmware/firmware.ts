import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import type { BrokerHolder } from '../lib/broker/broker';
import { systemClock } from '../lib/clock';
import { ArtifactStore } from '../lib/firmware/artifact-store';
import { CampaignEngine } from '../lib/firmware/campaign';
import { FileCampaignStore } from '../lib/firmware/campaign-store';
import { DownloadServer } from '../lib/firmware/download';
import { FirmwareError } from '../lib/firmware/errors';
import { FirmwareHttpApi } from '../lib/firmware/http-api';
import { FirmwareSigner } from '../lib/firmware/signing';
import type { RegistryHolder } from '../lib/registry/registry';
import { Throttle } from '../lib/throttle';

interface FirmwareNodeDef extends NodeDef {
  registry: string;
  broker: string;
  basePath: string;
  publicUrl: string;
  maxImageMB: number | string;
  maxDownloads: number | string;
  downloadRatePerS: number | string;
  waves: string;
  soakS: number | string;
  timeoutS: number | string;
  failureThresholdPercent: number | string;
  maxConcurrent: number | string;
}

type Msg = NodeMessageInFlow & Record<string, unknown>;
type Middleware = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

function num(value: unknown, fallback: number, min = 0): number {
  const n = Number(value);
  return value !== '' && Number.isFinite(n) && n >= min ? n : fallback;
}

/**
 * iotb-firmware: signed firmware artifacts and staged campaigns (rules in nodes/lib/firmware). It serves its
 * HTTP API itself on Node-RED's HTTP server (uploads stream to disk, downloads answer Range requests), runs the
 * campaigns over the broker's device twins, takes campaign operations as messages and sends every campaign and
 * device transition as a message.
 */
export = function register(RED: NodeAPI): void {
  function FirmwareNode(this: Node, config: FirmwareNodeDef): void {
    RED.nodes.createNode(this, config);
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the handlers below are arrow functions over it
    const node = this;
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    if (!registry) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('iotb-firmware.status.noRegistry') });
      node.error(RED._('iotb-firmware.error.noRegistry'));
      return;
    }
    const twins = (RED.nodes.getNode(config.broker) as (Node & BrokerHolder) | null)?.twins;
    const dir = join(RED.settings.userDir ?? process.cwd(), 'iotb-firmware');
    let artifacts: ArtifactStore;
    let engine: CampaignEngine | undefined;
    try {
      artifacts = new ArtifactStore(join(dir, 'artifacts'), FirmwareSigner.open(dir), {
        maxBytes: num(config.maxImageMB, 100, 0.001) * 1024 * 1024,
        knownType: (t) => registry.getType(t) !== undefined,
      });
    } catch (err) {
      node.status({ fill: 'red', shape: 'ring', text: RED._('iotb-firmware.status.storeFailed') });
      node.error(RED._('iotb-firmware.error.store', { dir, message: (err as Error).message }));
      return;
    }
    const publicUrl = (config.publicUrl || '').replace(/\/+$/, '');
    const api = new FirmwareHttpApi({
      registry,
      artifacts,
      downloads: new DownloadServer({
        maxConcurrent: Math.floor(num(config.maxDownloads, 50, 1)),
        ratePerDeviceS: num(config.downloadRatePerS, 1),
      }),
      campaigns: () => engine,
      basePath: config.basePath || '/api/firmware',
    });

    const status = new Throttle(() => {
      if (!engine) return;
      const active = engine.list().filter((c) => c.status !== 'COMPLETED' && c.status !== 'ABORTED');
      const paused = active.filter((c) => c.status === 'PAUSED').length;
      node.status(
        paused > 0
          ? {
              fill: 'yellow',
              shape: 'dot',
              text: RED._('iotb-firmware.status.paused', { active: active.length, paused }),
            }
          : {
              fill: 'green',
              shape: 'dot',
              text: RED._('iotb-firmware.status.ready', { active: active.length }),
            },
      );
    }, 1000);

    if (!twins) {
      node.status({ fill: 'yellow', shape: 'ring', text: RED._('iotb-firmware.status.noTwins') });
      node.warn(RED._('iotb-firmware.warn.noTwins'));
    } else {
      const waves = (config.waves || '1,10,50,100').split(',').map((w) => Number(w.trim()));
      try {
        engine = new CampaignEngine({
          store: new FileCampaignStore(join(dir, `campaigns-${node.id}.jsonl`)),
          twins,
          devices: registry,
          artifacts,
          downloadUrl: (a) => publicUrl + api.downloadPath(a.type, a.version),
          clock: systemClock,
          defaults: {
            waves,
            soakMs: num(config.soakS, 600) * 1000,
            timeoutMs: num(config.timeoutS, 3600, 1) * 1000,
            failureThreshold: num(config.failureThresholdPercent, 5) / 100,
            maxConcurrent: Math.floor(num(config.maxConcurrent, 100, 1)),
          },
        });
        engine.on('device', (t) => {
          node.send({ topic: 'firmware/device', payload: t });
          status.call();
        });
        engine.on('status', (s) => {
          node.send({ topic: 'firmware/campaign', payload: s });
          if (s.to === 'PAUSED')
            node.warn(RED._('iotb-firmware.warn.paused', { campaign: s.campaign, reason: s.reason ?? '' }));
          status.call();
        });
        engine.on('error', (err) => node.warn(RED._('iotb-firmware.warn.notify', { message: err.message })));
        engine.start();
        status.call();
      } catch (err) {
        engine = undefined;
        node.status({ fill: 'red', shape: 'ring', text: RED._('iotb-firmware.status.storeFailed') });
        node.error(RED._('iotb-firmware.error.store', { dir, message: (err as Error).message }));
      }
    }

    const middleware: Middleware = (req, res, next) => {
      if (!api.handle(req, res)) next();
    };
    RED.httpNode.use(middleware);

    node.on('input', (msg: Msg, send, done) => {
      try {
        if (!engine) throw new FirmwareError('BUSY', RED._('iotb-firmware.error.noTwins'));
        const id = typeof msg.campaign === 'string' ? msg.campaign : '';
        switch (msg.topic) {
          case 'campaign/create':
            msg.payload = engine.summary(engine.create(msg.payload ?? {}).id);
            break;
          case 'campaign/get':
            msg.payload = engine.summary(id) ?? null;
            break;
          case 'campaign/list': {
            const e = engine;
            msg.payload = e.list().map((c) => e.summary(c.id));
            break;
          }
          case 'campaign/pause':
          case 'campaign/resume':
          case 'campaign/abort':
            msg.payload = engine.summary(
              engine[msg.topic.slice('campaign/'.length) as 'pause' | 'resume' | 'abort'](id).id,
            );
            break;
          case 'artifact/list':
            msg.payload = artifacts.list(typeof msg.type === 'string' ? msg.type : undefined);
            break;
          default:
            throw new FirmwareError(
              'INVALID',
              RED._('iotb-firmware.error.topic', { topic: String(msg.topic) }),
            );
        }
        send(msg);
        done();
      } catch (err) {
        if (err instanceof FirmwareError)
          msg.rejection = { stage: 'firmware', code: err.code, reason: err.reason };
        done(err as Error);
      }
    });

    node.on('close', (done: () => void) => {
      // Node-RED's http in node unregisters its routes the same way: Express has no call for it.
      const router = (RED.httpNode as unknown as { _router?: { stack: { handle: unknown }[] } })._router;
      if (router) router.stack = router.stack.filter((layer) => layer.handle !== middleware);
      engine?.close();
      done();
    });
  }
  RED.nodes.registerType('iotb-firmware', FirmwareNode);
};
