import type { Rejection } from '../rejection';

/** A flow message as far as answering its HTTP request goes. */
type Carrier = { res?: unknown; rejection?: Rejection };

/**
 * One HTTP request, one answer. When a node turns a message that carries a request (`msg.res`, set by
 * `http in`) into several (`others`: the accepted readings' messages), and some are refusals, the request is answered by the first refusal, which says how
 * many readings were refused and how many accepted; every other message leaves without `res`. Otherwise each
 * would reach an `http response` node and try to answer again: an ERR_HTTP_HEADERS_SENT error per message, and
 * for a batch of accepted and refused readings a race between 202 and 400. The accepted readings are still stored.
 */
export function answerOnce(
  carrying: object,
  others: readonly object[],
  refused: readonly object[],
  acceptedReadings: number,
): void {
  const res = (carrying as Carrier).res;
  if (res === undefined || refused.length === 0) return;
  for (const m of others) delete (m as Carrier).res;
  for (const m of refused) delete (m as Carrier).res;
  const first = refused[0] as Carrier;
  first.res = res;
  const r = first.rejection;
  if (r) {
    const details = typeof r.details === 'object' && r.details !== null ? r.details : {};
    first.rejection = { ...r, details: { ...details, refused: refused.length, accepted: acceptedReadings } };
  }
}
