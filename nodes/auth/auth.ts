import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { Authenticator, type AuthMode } from '../lib/auth/authenticator';
import type { RegistryHolder } from '../lib/registry/registry';
import { rejection } from '../lib/rejection';
import { mountApiGuard } from './api-mount';

interface AuthNodeDef extends NodeDef {
  registry: string;
  mode: AuthMode;
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
    const registry = (RED.nodes.getNode(config.registry) as (Node & RegistryHolder) | null)?.registry;
    if (!registry) {
      this.status({ fill: 'red', shape: 'ring', text: 'iotb-auth.status.noRegistry' });
      this.error(RED._('iotb-auth.error.noRegistry'));
      return;
    }
    const mode: AuthMode = config.mode || 'bearer';
    const windowS = Number(config.windowS);
    const auth = new Authenticator(registry, {
      mode,
      windowMs: Number.isFinite(windowS) && windowS > 0 ? windowS * 1000 : undefined,
      topicPrefix: config.topicPrefix || 'devices',
      ratePerDeviceS: Number(config.ratePerS), // 0, empty or not a number: no limit (the authenticator decides)
    });
    this.status({ text: `iotb-auth.mode.${mode}` });

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
