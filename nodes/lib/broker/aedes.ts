/** The aedes instance the broker runs, and the parts of aedes' client it reads that aedes' typings leave out. */
import type { Aedes, AedesOptions, Client } from 'aedes';

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
