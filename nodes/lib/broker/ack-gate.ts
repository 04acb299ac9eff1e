import { ackLedger, type AckLedger, type AckOutcome, type AckOwner } from '../ingest/ack-ledger';
import { ackFailuresTotal, acksHeld, acksWaiting, ackTimeoutsTotal } from '../ingest/ingest-metrics';

/**
 * The embedded broker's PUBACK gate: "acknowledged" means "stored", and the readings inside Node-RED are bounded.
 *
 * aedes asks `authorizePublish` before it writes a QoS 1 PUBACK, and waits for its callback. The gate keeps that
 * callback (`release`) until the ack ledger says how the reading ended:
 * - `stored` (every part in the durable spool, or its rejection event in `device_events`): release → PUBACK;
 * - `timeout` (nobody settled it, e.g. a user's node dropped it): release → PUBACK, counted;
 * - `failed` (the spool could not take it): release with an error → aedes closes that connection without a
 *   PUBACK, and the device sends the reading again after it reconnects.
 * PUBACKs of one connection go out in the order its PUBLISHes came (MQTT 3.1.1, 4.6.0-2): a settled reading
 * waits for the earlier ones of its connection.
 *
 * Backpressure: at most `maxHeld` readings are held. Beyond that a publication is not handed to the flow; its
 * callback stays pending. aedes dispatches the packets of one socket read together and reads the socket again
 * only when all of them called back, so a waiting publication stops aedes reading that connection: the device's
 * QoS 1 window fills and it stops sending, the rest queues in the kernel's socket buffers, not in the heap.
 * QoS 0 publications of a stored kind wait at the bound the same way (they are not held once admitted).
 */

/** One publication, as the broker hands it to the gate. */
export interface GatedPublication {
  /** The connection it came on (PUBACK order is kept per connection). */
  connection: object;
  /** QoS 1 or 2 of a kind the flow stores: its PUBACK (PUBREC) waits for the ledger. */
  hold: boolean;
  /** Hands it to the flow with its ack id (called only for held publications). */
  deliver(ackId: number): void;
  /** aedes' authorizePublish callback: no error = go on (PUBACK for QoS 1); an error closes the connection. */
  release(err?: Error | null): void;
}

export interface AckGateOptions {
  /** Readings held (handed to the flow, not yet acknowledged) at most. */
  maxHeld: number;
  /** How long a held reading waits for its writer before it is acknowledged anyway (ms). */
  timeoutMs: number;
}

export const DEFAULT_ACK_GATE: AckGateOptions = { maxHeld: 10_000, timeoutMs: 30_000 };

export interface AckGateStats {
  held: number;
  waiting: number;
  maxHeld: number;
  timeouts: number;
  failures: number;
  /** When a held reading last timed out (ms since epoch), 0 if never. */
  lastTimeoutAt: number;
}

interface Held {
  p: GatedPublication;
  outcome: AckOutcome | undefined;
}

const SOURCE = 'embedded-broker';
const heldGauge = acksHeld.labels(SOURCE);
const waitingGauge = acksWaiting.labels(SOURCE);

/**
 * The held and waiting gauges (shared by every gate) move once per round of admissions and settlements, a
 * microtask, by the sum of that round's changes: prom-client hashes the labels on each update.
 */
const pending = { held: 0, waiting: 0, due: false };
function flushGauges(): void {
  if (pending.held !== 0) heldGauge.inc(pending.held);
  if (pending.waiting !== 0) waitingGauge.inc(pending.waiting);
  pending.held = 0;
  pending.waiting = 0;
  pending.due = false;
}
function moveGauges(held: number, waiting: number): void {
  pending.held += held;
  pending.waiting += waiting;
  if (pending.due) return;
  pending.due = true;
  queueMicrotask(flushGauges);
}
const timeoutsTotal = ackTimeoutsTotal.labels(SOURCE);
const failuresTotal = ackFailuresTotal.labels(SOURCE);

export class AckGate implements AckOwner {
  readonly opts: AckGateOptions;
  private readonly held = new Map<number, Held>();
  /** Per connection, its held publications in arrival order. */
  private readonly order = new Map<object, number[]>();
  /** Publications waiting at the bound, from `waitingHead` on (admitted ones are cleared to undefined). */
  private waiting: (GatedPublication | undefined)[] = [];
  private waitingHead = 0;
  private timeouts = 0;
  private failures = 0;
  private lastTimeoutAt = 0;

  constructor(
    opts: Partial<AckGateOptions> = {},
    private readonly ledger: AckLedger = ackLedger,
    private readonly now: () => number = Date.now,
  ) {
    this.opts = { ...DEFAULT_ACK_GATE, ...opts };
  }

  stats(): AckGateStats {
    return {
      held: this.held.size,
      waiting: this.waiting.length - this.waitingHead,
      maxHeld: this.opts.maxHeld,
      timeouts: this.timeouts,
      failures: this.failures,
      lastTimeoutAt: this.lastTimeoutAt,
    };
  }

  /** Takes a publication that passed the ACL: in the flow now, or waiting at the bound. */
  admit(p: GatedPublication): void {
    if (this.held.size >= this.opts.maxHeld || this.waitingHead < this.waiting.length) {
      this.waiting.push(p);
      moveGauges(0, 1);
      return;
    }
    this.pass(p);
  }

  /** The ledger's verdict on one held reading (AckOwner). */
  settled(id: number, outcome: AckOutcome): void {
    const h = this.held.get(id);
    if (!h || h.outcome) return;
    h.outcome = outcome;
    if (outcome === 'timeout') {
      this.timeouts++;
      this.lastTimeoutAt = this.now();
      timeoutsTotal.inc();
    }
    if (outcome === 'failed') {
      this.failures++;
      failuresTotal.inc();
      this.untrack(id);
      h.p.release(new Error('reading not stored (spool cannot take it): the device must send it again'));
    } else this.releaseInOrder(h.p.connection);
    this.pump();
  }

  /**
   * The flow that took the held readings is going away: they will not be acknowledged. Their connections (and
   * those of waiting publications) are closed so their devices send them again.
   */
  releaseAll(): void {
    this.ledger.forget(this);
    const refused = new Error('the flow that stores these readings stopped: the device must send them again');
    const held = [...this.held.values()];
    moveGauges(-held.length, 0);
    this.held.clear();
    this.order.clear();
    const waiting = this.waiting.slice(this.waitingHead);
    moveGauges(0, -waiting.length);
    this.waiting = [];
    this.waitingHead = 0;
    for (const h of held) if (h.outcome !== 'failed') h.p.release(refused);
    for (const p of waiting) p?.release(refused);
  }

  private pass(p: GatedPublication): void {
    if (!p.hold) return p.release(null);
    const id = this.ledger.hold(this, this.opts.timeoutMs);
    this.held.set(id, { p, outcome: undefined });
    moveGauges(1, 0);
    const queue = this.order.get(p.connection);
    if (queue) queue.push(id);
    else this.order.set(p.connection, [id]);
    p.deliver(id);
  }

  /** Admits waiting publications while there is room. */
  private pump(): void {
    while (this.waitingHead < this.waiting.length && this.held.size < this.opts.maxHeld) {
      const p = this.waiting[this.waitingHead];
      this.waiting[this.waitingHead++] = undefined;
      moveGauges(0, -1);
      if (p) this.pass(p);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    } else if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.waitingHead);
      this.waitingHead = 0;
    }
  }

  /** Sends the PUBACKs of one connection whose turn has come: settled, with no unsettled one before them. */
  private releaseInOrder(connection: object): void {
    const queue = this.order.get(connection);
    if (!queue) return;
    let n = 0;
    while (n < queue.length) {
      const h = this.held.get(queue[n]);
      if (h && !h.outcome) break;
      n++;
    }
    if (n === 0) return; // the oldest is still unsettled: the common case while a batch is on its way
    const ready = queue.splice(0, n);
    if (queue.length === 0) this.order.delete(connection);
    for (const id of ready) {
      const h = this.held.get(id);
      if (!h) continue;
      this.drop(id);
      h.p.release(null);
    }
  }

  /** Forgets a held reading that leaves out of turn (failed), and sends the PUBACKs it was holding up. */
  private untrack(id: number): void {
    const h = this.held.get(id);
    if (!h) return;
    this.drop(id);
    const queue = this.order.get(h.p.connection);
    const at = queue ? queue.indexOf(id) : -1;
    if (!queue || at < 0) return;
    queue.splice(at, 1);
    if (queue.length === 0) this.order.delete(h.p.connection);
    else if (at === 0) this.releaseInOrder(h.p.connection);
  }

  private drop(id: number): void {
    if (this.held.delete(id)) moveGauges(-1, 0);
  }
}
