/**
 * An in-memory `DeviceDirectory` for tests of nodes/lib/commands that do not need the registry node:
 * a test double of the registry's read side, named as such.
 */
import { EventEmitter } from 'node:events';
import type { DeviceDirectory, DeviceRecord, DeviceType } from '../../nodes/lib/device-contracts';

export class MemoryDirectory extends EventEmitter implements DeviceDirectory {
  readonly devices = new Map<string, DeviceRecord>();
  readonly types = new Map<string, DeviceType>();

  getDevice(id: string): DeviceRecord | undefined {
    return this.devices.get(id);
  }

  getType(name: string): DeviceType | undefined {
    return this.types.get(name);
  }

  addDevice(id: string, type = 'thermostat', enabled = true): void {
    this.devices.set(id, { id, type, enabled, createdAt: Date.now() });
  }

  revoke(id: string): void {
    this.devices.delete(id);
    this.emit('revoked', id);
  }
}

/** The device type the command tests use: the reference device's three commands. */
export const THERMOSTAT: DeviceType = {
  name: 'thermostat',
  commands: {
    reboot: {},
    // Allowed by the type, unknown to the reference device: it answers "rejected".
    selftest: {},
    'set-interval': {
      params: {
        type: 'object',
        properties: { intervalMs: { type: 'integer', minimum: 0, maximum: 3_600_000 } },
        required: ['intervalMs'],
        additionalProperties: false,
      },
    },
    led: {
      params: {
        type: 'object',
        properties: { on: { type: 'boolean' }, color: { type: 'string' } },
        required: ['on'],
      },
    },
  },
};

export function thermostatDirectory(...ids: string[]): MemoryDirectory {
  const dir = new MemoryDirectory();
  dir.types.set(THERMOSTAT.name, THERMOSTAT);
  for (const id of ids) dir.addDevice(id);
  return dir;
}
