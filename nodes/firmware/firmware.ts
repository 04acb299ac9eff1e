import { join } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { systemClock } from '../lib/clock';
import { ArtifactStore } from '../lib/firmware/artifact-store';
import { CampaignEngine } from '../lib/firmware/campaign';
import { FileCampaignStore } from '../lib/firmware/campaign-store';
import { DownloadServer } from '../lib/firmware/download';
import { FirmwareError } from '../lib/firmware/errors';
import { FirmwareHttpApi } from '../lib/firmware/http-api';
import { FirmwareSigner } from '../lib/firmware/signing';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import type { StatusView } from '../glue/status';

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

/** A number setting >= `min`, or its default. */
const num = (value: unknown, fallback: number, min = 0): number => numberSetting(value, { fallback, min });

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
    const glue = new NodeGlue(RED, node);
    const registry = glue.requireConfig('registry', config.registry);
    if (!registry) return;
    // Without twins the node serves artifacts only (no campaigns).
    const twins = glue.optionalConfig('twins', config.broker);
    const dir = glue.userFile('iotb-firmware');
    let artifacts: ArtifactStore;
    let engine: CampaignEngine | undefined;
    try {
      artifacts = new ArtifactStore(join(dir, 'artifacts'), FirmwareSigner.open(dir), {
        maxBytes: num(config.maxImageMB, 100, 0.001) * 1024 * 1024,
        knownType: (t) => registry.getType(t) !== undefined,
      });
    } catch (err) {
      glue.cannotWork(glue.t('error.store', { dir, message: (err as Error).message }), 'STORE_FAILED');
      return;
    }
    const publicUrl = (config.publicUrl || '').replace(/\/+$/, '');
    const api = new FirmwareHttpApi({
      registry,
      artifacts,
      downloads: new DownloadServer({
        maxConcurrent: numberSetting(config.maxDownloads, { fallback: 50, min: 1, integer: true }),
        ratePerDeviceS: num(config.downloadRatePerS, 1),
      }),
      campaigns: () => engine,
      basePath: config.basePath || '/api/firmware',
    });

    const status = glue.status((): StatusView | undefined => {
      if (!engine) return undefined;
      const active = engine.list().filter((c) => c.status !== 'COMPLETED' && c.status !== 'ABORTED');
      const paused = active.filter((c) => c.status === 'PAUSED').length;
      return paused > 0
        ? { fill: 'yellow', shape: 'dot', key: 'status.paused', vars: { active: active.length, paused } }
        : { fill: 'green', shape: 'dot', key: 'status.ready', vars: { active: active.length } };
    }, 1000);

    if (!twins) {
      status.show({ fill: 'yellow', shape: 'ring', key: 'status.noTwins' });
      node.warn(glue.t('warn.noTwins'));
    } else {
      const waves = (config.waves || '1,10,50,100').split(',').map((w) => Number(w.trim()));
      try {
        engine = new CampaignEngine({
          store: new FileCampaignStore(
            glue.stateFile('firmware', '.campaigns.jsonl', [join(dir, `campaigns-${node.id}.jsonl`)]),
          ),
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
            maxConcurrent: numberSetting(config.maxConcurrent, { fallback: 100, min: 1, integer: true }),
          },
        });
        engine.on('device', (t) => {
          node.send({ topic: 'firmware/device', payload: t });
          status.update();
        });
        engine.on('status', (s) => {
          node.send({ topic: 'firmware/campaign', payload: s });
          if (s.to === 'PAUSED')
            node.warn(glue.t('warn.paused', { campaign: s.campaign, reason: s.reason ?? '' }));
          status.update();
        });
        engine.on('error', (err) => node.warn(glue.t('warn.notify', { message: err.message })));
        engine.start();
        const started = engine;
        glue.onClose(() => started.close());
        status.update();
      } catch (err) {
        engine = undefined;
        status.show({ fill: 'red', shape: 'ring', key: 'status.storeFailed' });
        node.error(glue.t('error.store', { dir, message: (err as Error).message }));
      }
    }

    glue.httpMiddleware((req, res, next) => {
      if (!api.handle(req, res)) next();
    });

    node.on('input', (msg: Msg, send, done) => {
      try {
        if (!engine) throw new FirmwareError('BUSY', glue.t('error.noTwins'));
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
            throw new FirmwareError('INVALID', glue.t('error.topic', { topic: String(msg.topic) }));
        }
        send(msg);
        done();
      } catch (err) {
        if (err instanceof FirmwareError)
          msg.rejection = { stage: 'firmware', code: err.code, reason: err.reason };
        done(err as Error);
      }
    });
  }
  RED.nodes.registerType('iotb-firmware', FirmwareNode);
};
