/** MQTT.js clients for broker tests: connect and learn the CONNACK code, subscribe and learn the grant. */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/** Connects; resolves with the client, rejects with an error carrying the CONNACK `code` when refused. */
export function connectDevice(url: string, opts: IClientOptions): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts });
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      client.end(true);
      reject(err);
    };
    client.once('connect', () => {
      client.off('error', fail);
      client.off('close', closed);
      resolve(client);
    });
    client.once('error', fail);
    const closed = (): void =>
      fail(Object.assign(new Error('connection closed before CONNACK'), { code: 'CLOSED' }));
    client.once('close', closed);
  });
}

/** The CONNACK return code of a refused CONNECT (or 'CLOSED' when the broker hung up without one). */
export async function refusalCode(url: string, opts: IClientOptions): Promise<number | string> {
  try {
    const c = await connectDevice(url, opts);
    await c.endAsync();
    return 0;
  } catch (err) {
    return (err as { code: number | string }).code;
  }
}

/** Subscribes and returns the granted QoS per topic (128 = refused). */
export async function grants(client: MqttClient, topics: string[]): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(topics, { qos: 1 });
    return granted.map((g) => g.qos);
  } catch (err) {
    // MQTT.js rejects when any grant is a failure; the SUBACK is on the error
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (!granted) throw err;
    return granted;
  }
}

/** Resolves when the client's connection closes. */
export function closed(client: MqttClient): Promise<unknown> {
  return client.connected
    ? new Promise((resolve) => client.once('close', () => resolve(undefined)))
    : Promise.resolve();
}

/**
 * Publishes `count` readings of one device at QoS 1 to `devices/{id}/telemetry`, at most `inFlight` unacknowledged
 * at once (as a real device client would), in order; resolves when the broker acknowledged them all.
 */
export function publishReadings(
  client: MqttClient,
  deviceId: string,
  count: number,
  reading: (i: number) => Record<string, unknown>,
  inFlight = 100,
): Promise<void> {
  const topic = `devices/${deviceId}/telemetry`;
  return publishAll(client, count, (i) => [topic, JSON.stringify(reading(i))], inFlight);
}

/**
 * Publishes `count` messages (`message(i)` = [topic, payload]) at QoS 1 with at most `inFlight` unacknowledged;
 * `acked` is called as each PUBACK arrives. Resolves when all are acknowledged.
 */
export async function publishAll(
  client: MqttClient,
  count: number,
  message: (i: number) => [string, string],
  inFlight = 100,
  acked: () => void = () => undefined,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const [topic, payload] = message(next++);
      await client.publishAsync(topic, payload, { qos: 1 });
      acked();
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, count) }, lane));
}
