import Ajv2020 from 'ajv/dist/2020';
import { compileRules, typeRules } from '../alarms/rules';
import type { CommandSpec, DeviceType } from '../device-contracts';
import { TYPE_NAME_MAX_LENGTH, TYPE_NAME_PATTERN } from '../device-id';
import { RegistryError } from './errors';

/**
 * The registry's device types by name. A type is checked before the registry stores it: its name and its
 * command names in the id alphabet (nodes/lib/device-id.ts), its telemetry and command parameter schemas
 * compiling, its alarm rules valid.
 */
export class DeviceTypes {
  private readonly byName = new Map<string, DeviceType>();
  /** Created by the first check: a registry whose types all come from its store compiles no schema. */
  private ajv?: Ajv2020;

  get(name: string): DeviceType | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  list(): DeviceType[] {
    return [...this.byName.values()];
  }

  /** Adds or replaces a type that was checked (by `check`, or before it was stored). */
  set(type: DeviceType): void {
    this.byName.set(type.name, type);
  }

  delete(name: string): void {
    this.byName.delete(name);
  }

  /** Throws unless a type of this name exists: every device has one. */
  require(name: unknown): void {
    if (typeof name !== 'string' || !this.byName.has(name))
      throw new RegistryError(
        'INVALID',
        `device type "${String(name)}" does not exist: define it in the registry first`,
      );
  }

  /** Checks a device type and returns a clean copy (only known properties); throws RegistryError. */
  check(type: unknown): DeviceType {
    if (!isPlainObject(type))
      throw new RegistryError('INVALID', 'a device type must be an object { name, schema?, commands? }');
    const { name, schema, commands, alarms } = type;
    if (typeof name !== 'string' || !TYPE_NAME_PATTERN.test(name))
      throw new RegistryError(
        'INVALID',
        `device type name "${String(name)}" is not valid: use 1-${TYPE_NAME_MAX_LENGTH} of A-Z a-z 0-9 _ . : -`,
      );
    const clean: DeviceType = { name };
    if (schema !== undefined && schema !== null) {
      if (!isPlainObject(schema))
        throw new RegistryError('INVALID', `type ${name}: schema must be a JSON Schema object`);
      this.compileOrThrow(schema, `type ${name}: telemetry schema`);
      clean.schema = schema;
    }
    if (commands !== undefined && commands !== null) clean.commands = this.checkCommands(name, commands);
    if (alarms !== undefined && alarms !== null) {
      try {
        clean.alarms = typeRules(name, alarms);
        compileRules(clean.alarms);
      } catch (err) {
        throw new RegistryError('INVALID', `type ${name}: alarms: ${(err as Error).message}`);
      }
    }
    return clean;
  }

  private checkCommands(name: string, commands: unknown): Record<string, CommandSpec> {
    if (!isPlainObject(commands))
      throw new RegistryError(
        'INVALID',
        `type ${name}: commands must be an object { <command>: { params?, timeoutMs? } }`,
      );
    const clean: Record<string, CommandSpec> = {};
    for (const [cmd, spec] of Object.entries(commands)) {
      if (!TYPE_NAME_PATTERN.test(cmd))
        throw new RegistryError('INVALID', `type ${name}: command name "${cmd}" is not valid`);
      const s = spec ?? {};
      if (!isPlainObject(s))
        throw new RegistryError(
          'INVALID',
          `type ${name}: command ${cmd} must be an object { params?, timeoutMs? }`,
        );
      const out: CommandSpec = {};
      if (s.params !== undefined && s.params !== null) {
        if (!isPlainObject(s.params))
          throw new RegistryError(
            'INVALID',
            `type ${name}: command ${cmd} params must be a JSON Schema object`,
          );
        this.compileOrThrow(s.params, `type ${name}: command ${cmd} params schema`);
        out.params = s.params;
      }
      if (s.timeoutMs !== undefined && s.timeoutMs !== null && s.timeoutMs !== '') {
        const t = Number(s.timeoutMs);
        if (!Number.isInteger(t) || t <= 0)
          throw new RegistryError(
            'INVALID',
            `type ${name}: command ${cmd} timeoutMs must be a positive integer`,
          );
        out.timeoutMs = t;
      }
      clean[cmd] = out;
    }
    return clean;
  }

  private compileOrThrow(schema: Record<string, unknown>, what: string): void {
    const ajv = (this.ajv ??= new Ajv2020({ strict: false, allErrors: false }));
    try {
      ajv.compile(schema);
      // compiled schemas are cached by ajv per object; drop it, validate compiles its own
      ajv.removeSchema(schema);
    } catch (err) {
      throw new RegistryError('INVALID', `${what} does not compile: ${(err as Error).message}`);
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
