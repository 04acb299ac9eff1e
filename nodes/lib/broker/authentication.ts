/**
 * Authentication: each CONNECT is checked against the registry (username = device id, password = token,
 * client id = device id), with a lockout after repeated failures per device and address. A session lasts only
 * as long as the token it authenticated with: when a rotated token's grace ends the session is closed.
 */
import type { AuthErrorCode, AuthenticateError, Client } from 'aedes';
import { isValidDeviceId } from '../device-id';
import type { Registry } from '../registry/registry';
import { securityEvent, type SecurityEvent } from '../security-events';
import type { TopicAcl } from './acl';
import type { AuthenticateHook } from './aedes';
import { Lockout } from './limits';
import { refusedTotal } from './metrics';
import type { BrokerLimits } from './options';
import { openSession, type ClientTable } from './session';

/**
 * CONNACK return codes of a refused CONNECT. aedes declares them as an ambient const enum, whose values a
 * per-file transpiler (tsx) cannot inline, so they are written out here with the enum's type.
 */
/* eslint-disable @typescript-eslint/no-unsafe-enum-assignment */
const REFUSED = {
  identifierRejected: 2 as AuthErrorCode,
  serverUnavailable: 3 as AuthErrorCode,
  badUsernameOrPassword: 4 as AuthErrorCode,
  notAuthorized: 5 as AuthErrorCode,
};
/* eslint-enable @typescript-eslint/no-unsafe-enum-assignment */

function refusal(returnCode: AuthErrorCode, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode });
}

export class Authenticator {
  readonly lockout: Lockout;

  constructor(
    limits: BrokerLimits,
    private readonly registry: Registry,
    private readonly clients: ClientTable,
    private readonly acl: TopicAcl,
    private readonly topicPrefix: string,
    private readonly twins: boolean,
    private readonly security: (ev: SecurityEvent) => void,
  ) {
    const { lockoutThreshold, lockoutBaseMs, lockoutMaxMs, maxTrackedKeys } = limits;
    this.lockout = new Lockout(lockoutThreshold, lockoutBaseMs, lockoutMaxMs, maxTrackedKeys);
  }

  /** aedes' `authenticate` hook: on success the client's session is in the client table. */
  readonly authenticate: AuthenticateHook = (client, username, password, done) => {
    const ip = this.clients.ip(client) ?? 'unknown';
    const id = client.id;
    const refuse = (code: AuthErrorCode, reason: string, event = true): void => {
      refusedTotal.labels(reason).inc();
      if (event)
        this.security(
          securityEvent('auth_failure', 'mqtt', reason, isValidDeviceId(id) ? id : undefined, ip),
        );
      done(refusal(code, reason), false);
    };
    if (!isValidDeviceId(id)) return refuse(REFUSED.identifierRejected, 'invalid_client_id');
    if (username !== id) return refuse(REFUSED.identifierRejected, 'client_id_mismatch');
    const key = `${id}@${ip}`;
    if (this.lockout.lockedFor(key) > 0) return refuse(REFUSED.serverUnavailable, 'locked_out', false);
    const result = password ? this.registry.verifyToken(id, password) : undefined;
    if (!result?.ok) {
      const reason = result ? result.reason : 'no_password';
      if (reason !== 'disabled') {
        const lockMs = this.lockout.fail(key);
        if (lockMs > 0) this.security(securityEvent('lockout', 'mqtt', `locked_${lockMs}ms`, id, ip));
      }
      return refuse(reason === 'disabled' ? REFUSED.notAuthorized : REFUSED.badUsernameOrPassword, reason);
    }
    const session = openSession(
      this.topicPrefix,
      this.twins,
      result.device,
      result.credential,
      ip,
      client.clean,
    );
    if (!this.acl.mayLeaveWill(session, this.clients.willTopic(client)))
      return refuse(REFUSED.notAuthorized, 'will_topic_not_allowed', false);
    this.lockout.succeed(key);
    this.clients.setSession(client, session);
    done(null, true);
  };

  /** True while the client's session still rests on a live token (not revoked, disabled, expired). */
  isLive(client: Client): boolean {
    const s = this.clients.session(client);
    return s !== undefined && this.registry.isCredentialLive(s.device.id, s.credential);
  }
}

/**
 * Sessions whose token was rotated: the previous token stays valid for a grace period, and each such session is
 * re-checked once that has passed (`end` closes it when its token no longer verifies).
 */
export class RotationWatch {
  /** Devices whose previous token expires at the given time (registry clock). */
  private readonly expiring = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly end: (deviceId: string) => void,
  ) {}

  /** The registry's 'rotated' event: without a grace period the old session is checked now. */
  readonly rotated = (id: string, previousExpiresAt?: number): void => {
    if (previousExpiresAt === undefined) return this.end(id);
    this.expiring.set(id, previousExpiresAt);
    this.timer ??= setInterval(() => this.sweep(), 1000).unref();
  };

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    const now = this.registry.time();
    for (const [id, at] of this.expiring) {
      if (at > now) continue;
      this.expiring.delete(id);
      this.end(id);
    }
    if (this.expiring.size === 0) this.stop();
  }
}
