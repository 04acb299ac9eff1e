import type { Node, NodeStatusFill, NodeStatusShape } from 'node-red';
import { Throttle } from '../lib/throttle';

/** Substitutions of a catalog text (`__name__` placeholders). */
export type TextVars = Record<string, string | number>;

/** A catalog text of the node's own catalog: a key below its type (`status.online`) and its substitutions. */
export interface CatalogText {
  key: string;
  vars?: TextVars;
}

/** A node status as catalog texts: `text` first, then each of `more` appended. */
export interface StatusView extends CatalogText {
  fill: NodeStatusFill;
  shape: NodeStatusShape;
  more?: CatalogText[];
}

/** Translates a key of the node's catalog on the server (`RED._('<node type>.<key>', vars)`). */
export type Translate = (key: string, vars?: TextVars) => string;

/**
 * A node's status. One translation policy: the text always comes from the node's message catalog
 * (locales/en-US/<node>.json), translated on the server with `RED._`, so the editor, a Status node and the
 * tests see the same text. Updates through `update()` are throttled (nodes/lib/throttle.ts: at most one per
 * `intervalMs`, the last one always shown), so a busy node pays for one status per interval, not per message.
 */
export class NodeStatus {
  private readonly throttle: Throttle<[StatusView | undefined]>;

  constructor(
    private readonly node: Node,
    private readonly t: Translate,
    private readonly render: () => StatusView | undefined,
    intervalMs = 500,
  ) {
    this.throttle = new Throttle((given: StatusView | undefined) => {
      const view = given ?? this.render();
      if (view) this.paint(view);
    }, intervalMs);
  }

  /** Shows `view`, or else the rendered status, soon (throttled). */
  update(view?: StatusView): void {
    this.throttle.call(view);
  }

  /** Shows `view` now (e.g. a fatal problem at start); a pending throttled update is dropped. */
  show(view: StatusView): void {
    this.throttle.cancel();
    this.paint(view);
  }

  private paint(view: StatusView): void {
    let text = this.t(view.key, view.vars);
    for (const part of view.more ?? []) text += this.t(part.key, part.vars);
    this.node.status({ fill: view.fill, shape: view.shape, text });
  }

  /** Drops a pending update; for `close`. */
  cancel(): void {
    this.throttle.cancel();
  }
}
