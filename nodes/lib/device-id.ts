/**
 * The one id alphabet (docs/architecture.md, external contract): device ids, device type names and command
 * names are safe as an MQTT topic level, a file name part and an InfluxDB tag value. The editor receives the
 * same patterns through iotb-registry's exported settings; no other file spells them out.
 */
function idPattern(maxLength: number): RegExp {
  return new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,${maxLength - 1}}$`);
}

export const DEVICE_ID_MAX_LENGTH = 128;
export const DEVICE_ID_PATTERN = idPattern(DEVICE_ID_MAX_LENGTH);

/** Device type names and the command names of a type: the device id alphabet, at most 64 characters. */
export const TYPE_NAME_MAX_LENGTH = 64;
export const TYPE_NAME_PATTERN = idPattern(TYPE_NAME_MAX_LENGTH);

export function isValidDeviceId(id: unknown): id is string {
  return typeof id === 'string' && DEVICE_ID_PATTERN.test(id);
}

/** What the pipeline knows about the sender once it is authenticated (`msg.device`). */
export interface DeviceRef {
  id: string;
  type: string;
  name?: string;
  meta?: Record<string, unknown>;
}
