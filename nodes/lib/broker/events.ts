/** What a DeviceBroker tells its users: its typed events and the records they carry. */
import type { DeviceLinkEvents } from '../device-contracts';
import type { SecurityEvent } from '../security-events';

export type BrokerState = 'starting' | 'listening' | 'failed' | 'closed';

/** A connection event for iotb-device-in's second output and the `device_events` measurement. */
export interface ConnectionEvent {
  event: 'connected' | 'disconnected';
  deviceId: string;
  ip?: string;
  at: number;
}

/** What a DeviceBroker emits: the `DeviceLink` events, plus its own. */
export interface BrokerEvents extends DeviceLinkEvents {
  connection: [event: ConnectionEvent];
  security: [event: SecurityEvent];
  state: [state: BrokerState];
  /** Only for listener failures. */
  error: [error: Error];
}
