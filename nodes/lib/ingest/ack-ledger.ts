/**
 * The ack ledger: how "acknowledged = stored" crosses a Node-RED flow.
 *
 * An ingest source (the embedded broker, the external-broker node, HTTP ingest) holds each reading's
 * acknowledgement (PUBACK, HTTP answer) and gives the reading an ack id. The id travels in the message as
 * `msg.ackId` (one number, or an array parallel to `msg.payload` in a batch; `null` for a reading that has no
 * acknowledgement, e.g. one imputed by iotb-quality). Messages carry plain numbers because Node-RED deep-copies
 * a message at every fan-out: an object or closure would be copied, a number keeps its meaning.
 *
 * Whoever makes a reading durable settles its id: iotb-influx-write once the points are in the durable
 * spool, both for the reading itself and for the rejection event of a refused reading (stored in
 * `device_events`). A source that splits one acknowledged publication into k readings adds k - 1 references
 * first, so the acknowledgement goes out only when all k are durable.
 *
 * Outcomes the owner receives, exactly once per id:
 * - `stored`: every reference was settled as stored: send the acknowledgement.
 * - `failed`: a writer could not make it durable (spool full, disk full): do not acknowledge; the sender
 *   must send it again (MQTT: close the connection so the client resends; HTTP: 503).
 * - `timeout`: nobody settled it within the owner's timeout (a user's node dropped it between ingest and
 *   storage): the owner decides, and counts it; it never stalls a device forever.
 *
 * Besides the owner, iotb-validate asks `wasStored(id)` when a reading comes again: a re-send is dropped only
 * when its first copy's id ended `stored`; otherwise it is written again (see nodes/lib/validate/duplicates.ts).
 *
 * The ledger is one per process (`ackLedger`), kept on globalThis like the metrics registry so that every copy
 * of this module (tests load the TypeScript source beside the built nodes) settles into the same ledger.
 */
export type AckOutcome = 'stored' | 'failed' | 'timeout';

/** The side that holds acknowledgements: told once per id how it ended. */
export interface AckOwner {
  settled(id: number, outcome: AckOutcome): void;
}

/** What `msg.ackId` holds: one id, an array parallel to a batch's payload, or nothing. */
export type AckIds = number | null | undefined | readonly (number | null | undefined)[];

/** How many of the latest ids `wasStored` can answer for (a bit each: 128 KiB). */
const REMEMBERED_IDS = 1 << 20;

interface Entry {
  owner: AckOwner;
  refs: number;
  deadline: number;
}

export class AckLedger {
  private readonly entries = new Map<number, Entry>();
  private nextId = 1;
  private timer: NodeJS.Timeout | undefined;
  /** One bit per id of the last REMEMBERED_IDS: set when the id ended `stored`. */
  private readonly storedBits = new Uint32Array(REMEMBERED_IDS / 32);

  constructor(
    private readonly now: () => number = Date.now,
    /** How often expired ids are looked for; 0 = never by itself (tests call `expire`). */
    private readonly sweepMs = 250,
  ) {}

  /** Ids held and not yet settled. */
  get size(): number {
    return this.entries.size;
  }

  /** Holds one acknowledgement; `owner.settled` is called once, at the latest after `timeoutMs`. */
  hold(owner: AckOwner, timeoutMs: number): number {
    const id = this.nextId++;
    this.storedBits[(id & (REMEMBERED_IDS - 1)) >>> 5] &= ~(1 << (id & 31));
    this.entries.set(id, { owner, refs: 1, deadline: this.now() + timeoutMs });
    if (!this.timer && this.sweepMs > 0) {
      this.timer = setInterval(() => this.expire(), this.sweepMs);
      this.timer.unref();
    }
    return id;
  }

  /** One publication became `extra` more readings: each must be settled before the owner hears `stored`. */
  addRefs(id: number, extra: number): void {
    const e = this.entries.get(id);
    if (e && extra > 0) e.refs += extra;
  }

  /** Settles one reference of each id in `ids` (see `AckIds`); unknown or settled ids are ignored. */
  settle(ids: AckIds, outcome: 'stored' | 'failed'): void {
    if (ids === null || ids === undefined) return;
    if (typeof ids === 'number') return this.settleOne(ids, outcome);
    for (const id of ids) if (typeof id === 'number') this.settleOne(id, outcome);
  }

  /**
   * True only when `id` is known to have ended `stored` (everything it acknowledged is durable); false when
   * it is still held, ended otherwise, was forgotten, or is older than the last REMEMBERED_IDS ids.
   */
  wasStored(id: number): boolean {
    if (!(id < this.nextId && id >= this.nextId - REMEMBERED_IDS && id >= 1)) return false;
    return (this.storedBits[(id & (REMEMBERED_IDS - 1)) >>> 5] & (1 << (id & 31))) !== 0;
  }

  /** Drops ids without telling their owner: the owner is closing and will not acknowledge them. */
  forget(owner: AckOwner): void {
    for (const [id, e] of this.entries) if (e.owner === owner) this.entries.delete(id);
    this.stopIfIdle();
  }

  /** Settles every id whose deadline has passed as `timeout`; the timer calls this, tests call it directly. */
  expire(now = this.now()): void {
    for (const [id, e] of this.entries) {
      if (e.deadline > now) continue;
      this.entries.delete(id);
      e.owner.settled(id, 'timeout');
    }
    this.stopIfIdle();
  }

  private settleOne(id: number, outcome: 'stored' | 'failed'): void {
    const e = this.entries.get(id);
    if (!e) return;
    if (outcome === 'stored' && --e.refs > 0) return;
    this.entries.delete(id);
    if (outcome === 'stored') this.storedBits[(id & (REMEMBERED_IDS - 1)) >>> 5] |= 1 << (id & 31);
    e.owner.settled(id, outcome);
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.entries.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** The slice of the ack ledger that a node splitting a message needs. */
export interface AckRefs {
  addRefs(id: number, extra: number): void;
}

/**
 * One acknowledged publication (one ack id, not an array of them) became `parts` messages or batch elements
 * that each settle one reference: the ledger gets `parts - 1` more, so the acknowledgement waits for all.
 */
export function addParts(ledger: AckRefs, ackId: unknown, parts: number): void {
  if (typeof ackId === 'number' && parts > 1) ledger.addRefs(ackId, parts - 1);
}

/** The process-wide ledger that sources and writers share. */
export const ackLedger: AckLedger = ((globalThis as Record<symbol, AckLedger | undefined>)[
  Symbol.for('node-red-contrib-iot-backend.ackLedger')
] ??= new AckLedger());
