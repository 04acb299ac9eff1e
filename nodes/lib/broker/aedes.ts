/** The aedes instance the broker runs, and the parts of aedes' client it reads that aedes' typings leave out. */
import type { Aedes, AedesOptions, Client, PublishPacket } from 'aedes';

/** The hooks aedes calls (its typings name them only as fields of `AedesOptions`). */
export type AuthenticateHook = NonNullable<AedesOptions['authenticate']>;
export type AuthorizePublishHook = NonNullable<AedesOptions['authorizePublish']>;
export type AuthorizeSubscribeHook = NonNullable<AedesOptions['authorizeSubscribe']>;
export type PreConnectHook = NonNullable<AedesOptions['preConnect']>;

/** aedes 1.x keeps a client's live subscriptions (restored ones included) on `client.subscriptions`. */
interface ClientWithSubscriptions extends Client {
  subscriptions?: Record<string, unknown>;
}

/** True when the client holds a subscription to exactly `topic`. */
export function hasSubscription(client: Client, topic: string): boolean {
  return (client as ClientWithSubscriptions).subscriptions?.[topic] !== undefined;
}

// TypeScript turns import() into require() for CommonJS output, and aedes 1.x is an ES module that
// require() loads only on Node >= 20.19: a real dynamic import works on every supported Node.
// eslint-disable-next-line @typescript-eslint/no-implied-eval
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

/** A new aedes instance (aedes is loaded on first use). */
export async function createAedes(opts: AedesOptions): Promise<Aedes> {
  const { Aedes } = (await importEsm('aedes')) as {
    Aedes: { createBroker(o: AedesOptions): Promise<Aedes> };
  };
  return Aedes.createBroker(opts);
}

/** aedes' `publish` as aedes calls it itself: with the publishing client, or without one (the callback second). */
type InternalPublish = (
  packet: PublishPacket,
  client: Client | null | ((err?: Error | null) => void),
  done?: (err?: Error | null) => void,
) => void;

/**
 * Takes the publications of clients out of aedes' routing: `take` returns true for a publication it has handed
 * on itself, and aedes then neither matches it against subscriptions nor stores it (as retained or for offline
 * sessions). For the broker's devices nothing else is possible anyway: no client may subscribe to another
 * device's telemetry, status or acks. aedes calls `broker.publish(packet, client, done)` once a client's
 * PUBLISH passed authorizePublish (after the PUBACK for QoS 1) and for its Will; the broker's own publications
 * (no client) take aedes' way as before.
 */
export function takeClientPublications(
  aedes: Aedes,
  take: (packet: PublishPacket, client: Client) => boolean,
): void {
  const route = aedes.publish.bind(aedes) as InternalPublish;
  const publish: InternalPublish = (packet, client, done) => {
    if (client === null || typeof client === 'function' || !take(packet, client))
      return route(packet, client, done);
    // Later, as aedes' own routing answers: the callback reads the client's socket again, which must not
    // happen inside the parse of the chunk this packet came in.
    if (done) process.nextTick(done);
  };
  Object.assign(aedes, { publish });
}
