import { randomUUID } from 'node:crypto';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { DeviceDirectory } from '../device-contracts';
import { DEVICE_ID_PATTERN, TYPE_NAME_PATTERN, isValidDeviceId } from '../device-id';
import { RejectionError } from '../rejection';

/** What a flow asks for (`msg.deviceId | msg.device.id`, `msg.payload: { name, params }`, `msg.timeoutMs`, ...). */
export interface CommandRequest {
  deviceId: unknown;
  name: unknown;
  params?: unknown;
  timeoutMs?: unknown;
  ttlMs?: unknown;
  id?: unknown;
}

/** A request that passed every check: safe to queue. */
export interface ValidCommand {
  id: string;
  deviceId: string;
  name: string;
  params: Record<string, unknown>;
  timeoutMs: number;
  ttlMs: number;
}

export interface CommandDefaults {
  timeoutMs: number;
  ttlMs: number;
}

/** Limits that keep one request from hurting the process or the device. */
export const LIMITS = {
  /** Longest timeout and ttl; also keeps timers below setTimeout's 24.8-day ceiling. */
  maxTimeoutMs: 24 * 3600_000,
  maxTtlMs: 7 * 24 * 3600_000,
  minMs: 1,
  /** Serialized params, bytes. */
  maxParamsBytes: 64 * 1024,
} as const;

/** Idempotency ids travel in topics' payloads, logs and file lines: the same plain, bounded token as a device id. */
const COMMAND_ID_PATTERN = DEVICE_ID_PATTERN;
/** Command names are declared by device types: the same alphabet the registry accepts for them. */
const COMMAND_NAME_PATTERN = TYPE_NAME_PATTERN;

function refuse(code: string, reason: string, details?: unknown): never {
  throw new RejectionError('command', code, reason, details);
}

function duration(value: unknown, fallback: number, max: number, what: string): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < LIMITS.minMs || n > max)
    refuse(`INVALID_${what.toUpperCase()}`, `${what} must be a whole number of ms between 1 and ${max}`, {
      got: value,
    });
  return n;
}

/**
 * Checks a request against the registry: the device exists and is enabled, its type allows the command,
 * params match the command's JSON Schema (compiled once per schema object). Throws a `RejectionError`.
 */
export class RequestValidator {
  private readonly ajv = new Ajv2020({ allErrors: true, strict: false, addUsedSchema: false });
  private readonly compiled = new WeakMap<object, ValidateFunction>();

  constructor(private readonly directory: DeviceDirectory) {
    addFormats(this.ajv);
  }

  validate(req: CommandRequest, defaults: CommandDefaults): ValidCommand {
    const { deviceId, name } = req;
    if (!isValidDeviceId(deviceId))
      refuse('INVALID_DEVICE_ID', 'msg.deviceId (or msg.device.id) must be a valid device id', {
        got: typeof deviceId === 'string' ? deviceId.slice(0, 140) : typeof deviceId,
      });
    if (typeof name !== 'string' || !COMMAND_NAME_PATTERN.test(name))
      refuse('INVALID_NAME', 'msg.payload.name must be a command name (letters, digits, _ . : -; up to 64)');
    let id: string;
    if (req.id === undefined || req.id === null || req.id === '') id = randomUUID();
    else if (typeof req.id === 'string' && COMMAND_ID_PATTERN.test(req.id)) id = req.id;
    else
      refuse('INVALID_ID', 'msg.id must be a string of letters, digits and _ . : - (up to 128)', {
        got: typeof req.id,
      });

    const params = req.params ?? {};
    if (typeof params !== 'object' || Array.isArray(params))
      refuse('INVALID_PARAMS', 'msg.payload.params must be an object');
    if (Buffer.byteLength(JSON.stringify(params)) > LIMITS.maxParamsBytes)
      refuse('PARAMS_TOO_LARGE', `params must serialize to at most ${LIMITS.maxParamsBytes} bytes`);

    const device = this.directory.getDevice(deviceId);
    if (!device) refuse('UNKNOWN_DEVICE', `device ${deviceId} is not registered (or was revoked)`);
    if (!device.enabled) refuse('DEVICE_DISABLED', `device ${deviceId} is disabled`);
    if (this.directory.hasCredentials?.(deviceId) === false)
      refuse('DEVICE_REVOKED', `device ${deviceId} has no valid credentials (revoked)`);
    const type = this.directory.getType(device.type);
    const spec = type?.commands?.[name];
    if (!spec)
      refuse('COMMAND_NOT_ALLOWED', `command "${name}" is not allowed for device type "${device.type}"`, {
        allowed: Object.keys(type?.commands ?? {}),
      });
    if (spec.params) {
      const check = this.schema(spec.params);
      if (!check(params))
        refuse('INVALID_PARAMS', `params for "${name}" do not match its schema`, {
          errors: (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`),
        });
    }
    return {
      id,
      deviceId,
      name,
      params: params as Record<string, unknown>,
      timeoutMs: duration(
        req.timeoutMs,
        spec.timeoutMs ?? defaults.timeoutMs,
        LIMITS.maxTimeoutMs,
        'timeoutMs',
      ),
      ttlMs: duration(req.ttlMs, defaults.ttlMs, LIMITS.maxTtlMs, 'ttlMs'),
    };
  }

  private schema(schema: Record<string, unknown>): ValidateFunction {
    let fn = this.compiled.get(schema);
    if (!fn) {
      try {
        fn = this.ajv.compile(schema);
      } catch (err) {
        refuse(
          'INVALID_SCHEMA',
          `the device type's params schema does not compile: ${(err as Error).message}`,
        );
      }
      this.compiled.set(schema, fn);
    }
    return fn;
  }
}
