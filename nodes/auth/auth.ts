import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { Authenticator, type AuthMode } from '../lib/auth/authenticator';
import { rejection } from '../lib/rejection';
import { NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';
import { mountApiGuard } from './api-mount';

interface AuthNodeDef extends NodeDef {
  registry: string;
  mode?: AuthMode;
  windowS: number | string;
  topicPrefix: string;
  ratePerS?: number | string;
}

interface HttpReq {
  headers?: Record<string, string | string[] | undefined>;
  params?: Record<string, string>;
  ip?: string;
}

type Msg = NodeMessageInFlow & { req?: HttpReq; [k: string]: unknown };

/**
 * iotb-auth: decides who sent a message that did not come through the embedded broker (HTTP bearer token,
 * signed body, operator API key, or an external broker's topic). Output 1 authenticated, output 2 rejected.
 */
export = function register(RED: NodeAPI): void {
  // Every /api route passes iotb-auth: its module also guards what reaches those routes.
  mountApiGuard(RED);
  function AuthNode(this: Node, config: AuthNodeDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    const registry = glue.requireConfig('registry', config.registry, { stage: 'auth', outputs: 2 });
    if (!registry) return;
    const mode: AuthMode = config.mode || 'bearer';
    const windowS = numberSetting(config.windowS, { fallback: undefined, above: 0 });
    const auth = new Authenticator(registry, {
      mode,
      windowMs: windowS === undefined ? undefined : windowS * 1000,
      topicPrefix: config.topicPrefix || 'devices',
      // Empty or 0: no limit.
      ratePerDeviceS: numberSetting(config.ratePerS, { fallback: 0, min: 0 }),
    });
    glue.status().show({ fill: 'grey', shape: 'dot', key: `mode.${mode}` });

    this.on('input', (m, send, done) => {
      const msg = m as Msg;
      const req = msg.req;
      const body =
        Buffer.isBuffer(msg.payload) || typeof msg.payload === 'string'
          ? msg.payload
          : JSON.stringify(msg.payload ?? '');
      const outcome = auth.authenticate({
        headers: req?.headers,
        body,
        topic: typeof msg.topic === 'string' ? msg.topic : undefined,
        deviceId: req?.params?.id,
        ip: req?.ip,
      });
      if (outcome.ok) {
        if (outcome.device) msg.device = outcome.device;
        if (outcome.apiKeyId !== undefined) msg.operator = { apiKeyId: outcome.apiKeyId };
        send([msg, null]);
        return done();
      }
      msg.rejection = rejection('auth', outcome.code, outcome.reason);
      if (req) {
        msg.statusCode = outcome.status;
        msg.payload = { error: outcome.code, reason: outcome.reason };
        if (outcome.status === 401) msg.headers = { 'WWW-Authenticate': 'Bearer' };
        if (outcome.status === 429) msg.headers = { 'Retry-After': '1' };
      }
      send([null, msg]);
      done();
    });
  }
  RED.nodes.registerType('iotb-auth', AuthNode);
};
