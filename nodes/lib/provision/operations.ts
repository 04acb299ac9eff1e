import type { DeviceRecord } from '../device-contracts';
import { httpStatusOf } from '../rejection';
import { RegistryError, type Registry } from '../registry/registry';

/** What a provisioning operation needs to know about presence (the embedded broker offers it). */
export interface PresenceSource {
  getPresence(deviceId: string): { online: boolean; lastSeen: number };
}

export const OPERATIONS = [
  'create',
  'get',
  'list',
  'update',
  'rotate',
  'revoke',
  'remove',
  'disable',
  'enable',
  'register',
  'putType',
  'deleteType',
  'listTypes',
  'createApiKey',
  'listApiKeys',
  'revokeApiKey',
  'setProvisioning',
  'removeProvisioning',
] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface OperationInput {
  operation: Operation;
  /** Device id (route parameter), type name or API key id, depending on the operation. */
  id?: string;
  body?: unknown;
  query?: Record<string, unknown>;
}

export interface OperationResult {
  statusCode: number;
  payload: unknown;
}

/** The HTTP status of a registry refusal: the one map of refusal codes to statuses (nodes/lib/rejection.ts). */
export function statusOf(err: RegistryError): number {
  return httpStatusOf(err.code);
}

const MAX_PAGE = 1000;

function obj(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw new RegistryError('INVALID', 'the body must be a JSON object');
  return body as Record<string, unknown>;
}

function str(v: unknown, what: string): string;
function str(v: unknown, what: string, required: false): string | undefined;
function str(v: unknown, what: string, required = true): string | undefined {
  if (v === undefined || v === null || v === '') {
    if (required) throw new RegistryError('INVALID', `${what} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new RegistryError('INVALID', `${what} must be a string`);
  return v;
}

function int(v: unknown, what: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined || v === null || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new RegistryError('INVALID', `${what} must be an integer from 0 to ${max}`);
  return n;
}

/**
 * Registry operations as the HTTP API (docs/backend.md) exposes them. Tokens and keys appear only in the
 * answers of create, rotate, register, createApiKey and setProvisioning — shown once, stored hashed.
 * Throws RegistryError for refusals (mapped with `statusOf`).
 */
export function runOperation(
  registry: Registry,
  presence: PresenceSource | undefined,
  input: OperationInput,
): OperationResult {
  const view = (d: DeviceRecord): Record<string, unknown> => ({
    ...d,
    credentials: registry.credentialInfo(d.id),
    ...(presence ? presence.getPresence(d.id) : {}),
  });
  const needId = (): string => str(input.id, 'the id');
  const body = obj(input.body);
  switch (input.operation) {
    case 'create': {
      const { device, token } = registry.createDevice({
        id: str(body.id, 'id', false),
        type: str(body.type, 'type'),
        name: str(body.name, 'name', false),
        meta: body.meta as Record<string, unknown> | undefined,
      });
      return { statusCode: 201, payload: { ...view(device), token } };
    }
    case 'get': {
      const d = registry.getDevice(needId());
      if (!d) throw new RegistryError('NOT_FOUND', `device ${input.id} does not exist`);
      return { statusCode: 200, payload: view(d) };
    }
    case 'list': {
      const q = input.query ?? {};
      const all = registry.listDevices({ type: str(q.type, 'type', false) });
      const offset = int(q.offset, 'offset', 0);
      const limit = int(q.limit, 'limit', 100, MAX_PAGE);
      return {
        statusCode: 200,
        payload: { total: all.length, offset, limit, devices: all.slice(offset, offset + limit).map(view) },
      };
    }
    case 'update': {
      const d = registry.updateDevice(needId(), {
        type: str(body.type, 'type', false),
        name: str(body.name, 'name', false),
        meta: body.meta as Record<string, unknown> | undefined,
      });
      return { statusCode: 200, payload: view(d) };
    }
    case 'rotate': {
      const graceS = body.graceS === undefined ? undefined : int(body.graceS, 'graceS', 0, 30 * 86_400);
      const r = registry.rotateToken(needId(), graceS === undefined ? undefined : graceS * 1000);
      return {
        statusCode: 200,
        payload: { ...view(r.device), token: r.token, previousExpiresAt: r.previousExpiresAt ?? null },
      };
    }
    case 'revoke':
      return { statusCode: 200, payload: view(registry.revokeTokens(needId())) };
    case 'remove':
      registry.removeDevice(needId());
      return { statusCode: 200, payload: { id: input.id, removed: true } };
    case 'disable':
      return { statusCode: 200, payload: view(registry.setEnabled(needId(), false)) };
    case 'enable':
      return { statusCode: 200, payload: view(registry.setEnabled(needId(), true)) };
    case 'register': {
      const { device, token } = registry.registerSelf({
        type: str(body.type, 'type'),
        key: str(body.key, 'key'),
        id: str(body.id, 'id'),
        name: str(body.name, 'name', false),
        meta: body.meta as Record<string, unknown> | undefined,
      });
      return { statusCode: 201, payload: { ...view(device), token } };
    }
    case 'putType': {
      const existed = registry.getType(str(body.name, 'name')) !== undefined;
      return { statusCode: existed ? 200 : 201, payload: registry.putType(body) };
    }
    case 'deleteType':
      registry.deleteType(needId());
      return { statusCode: 200, payload: { name: input.id, removed: true } };
    case 'listTypes':
      return { statusCode: 200, payload: registry.listTypes() };
    case 'createApiKey':
      return { statusCode: 201, payload: registry.createApiKey(str(body.name, 'name', false)) };
    case 'listApiKeys':
      return { statusCode: 200, payload: registry.listApiKeys() };
    case 'revokeApiKey':
      registry.revokeApiKey(needId());
      return { statusCode: 200, payload: { id: input.id, revoked: true } };
    case 'setProvisioning': {
      const allow = body.allow;
      if (!Array.isArray(allow))
        throw new RegistryError('INVALID', 'allow must be a list of device ids or prefixes ending in *');
      const { key } = registry.setProvisioning(str(body.type, 'type'), allow as string[]);
      return { statusCode: 201, payload: { type: body.type, allow, key } };
    }
    case 'removeProvisioning':
      registry.removeProvisioning(needId());
      return { statusCode: 200, payload: { type: input.id, removed: true } };
    default:
      throw new RegistryError(
        'INVALID',
        `unknown operation "${String(input.operation)}"; one of ${OPERATIONS.join(', ')}`,
      );
  }
}
