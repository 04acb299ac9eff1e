/** Waiting for events of in-process emitters (brokers, registries, clients) in tests. */

/** Resolves with the first argument of the next `event` that passes `filter`; stops listening then. */
export function nextEvent<T>(
  emitter: NodeJS.EventEmitter,
  event: string,
  filter: (v: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => {
    const on = (v: T): void => {
      if (!filter(v)) return;
      emitter.off(event, on);
      resolve(v);
    };
    emitter.on(event, on);
  });
}
