import type { EventEmitter } from 'node:events';

/** The listeners for some events of `E`, keyed by event name. */
export type ListenerMap<E> = { [K in keyof E]?: (...args: E[K] & unknown[]) => void };

/**
 * Listeners bound to emitters that outlive their owner (a registry, a broker), removed together when the owner
 * goes: `bind` lists each listener once, `unbindAll` takes every one off again, so no `off` can be forgotten.
 */
export class EventBindings {
  private readonly unbinds: (() => void)[] = [];

  /**
   * Listens to the events of `emitter` in `listeners` until `unbindAll`. The event map is named, e.g.
   * `bind<RegistryEvents>(registry, { revoked })`: TypeScript cannot infer it from a class that extends
   * `EventEmitter<E>` (it would type every listener's arguments as any).
   */
  bind<E extends Record<keyof E, unknown[]> = never>(
    emitter: EventEmitter<NoInfer<E>>,
    listeners: NoInfer<ListenerMap<E>>,
  ): this {
    // The typed emitter cannot check a key taken from the map against its own signature; the map's type
    // above is what keeps each listener's arguments right.
    const plain = emitter as EventEmitter;
    for (const [event, listener] of Object.entries(listeners) as [string, (...a: unknown[]) => void][]) {
      plain.on(event, listener);
      this.unbinds.push(() => plain.off(event, listener));
    }
    return this;
  }

  /** Removes every listener bound so far. */
  unbindAll(): void {
    for (const unbind of this.unbinds.splice(0)) unbind();
  }
}
