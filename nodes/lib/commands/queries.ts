import { RejectionError } from '../rejection';
import { COMMAND_STATES, isFinal, type CommandState } from './states';

/** Most commands one list answer holds (the newest). */
export const LIST_LIMIT = 1000;

const isPending = (s: CommandState): boolean => !isFinal(s);

/** Named groups of states a list may ask for; `pending` (not final yet) is the default. */
const GROUPS = new Map<string, (state: CommandState) => boolean>([
  ['pending', isPending],
  ['final', (s) => isFinal(s)],
  ['all', () => true],
]);

/**
 * The states a list of a device's commands asks for (`?state=`): `pending` (QUEUED, SENT, DELIVERED; the
 * default), `final`, `all`, or state names separated by commas (`QUEUED,SENT`). Throws INVALID_QUERY.
 */
export function stateFilter(value: unknown): { name: string; accepts: (state: CommandState) => boolean } {
  if (value === undefined || value === '') return { name: 'pending', accepts: isPending };
  if (typeof value !== 'string' || value.length > 200) throw invalid(value);
  const group = GROUPS.get(value);
  if (group) return { name: value, accepts: group };
  const names = value.split(',');
  if (!names.every((n) => (COMMAND_STATES as readonly string[]).includes(n))) throw invalid(value);
  const wanted = new Set(names);
  return { name: names.join(','), accepts: (s) => wanted.has(s) };
}

function invalid(value: unknown): RejectionError {
  return new RejectionError(
    'command',
    'INVALID_QUERY',
    `state must be pending, final, all or states separated by commas (${COMMAND_STATES.join(', ')}); got ${JSON.stringify(String(value)).slice(0, 60)}`,
  );
}
