/** Device ids (docs/architecture.md, external contract): safe as an MQTT topic level, a file name part and an InfluxDB tag value. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

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
