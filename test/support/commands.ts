/** Shared wiring for the command tests: a dispatcher over a real broker link, reference devices, waits. */
import { once, type EventEmitter } from 'node:events';
import { join } from 'node:path';
import type { CommandDispatcher } from '../../nodes/lib/commands/dispatcher';
import { isFinal, type CommandRecord } from '../../nodes/lib/commands/states';
import type { DeviceLink } from '../../nodes/lib/device-contracts';

/** Resolves with the command's record when it reaches its final state. */
export function finalOf(d: CommandDispatcher, id: string, timeoutMs = 20_000): Promise<CommandRecord> {
  const now = d.get(id);
  if (now && isFinal(now.state)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      d.off('final', onFinal);
      reject(new Error(`command ${id} did not finish within ${timeoutMs} ms (state ${d.get(id)?.state})`));
    }, timeoutMs);
    const onFinal = (r: CommandRecord): void => {
      if (r.id !== id) return;
      clearTimeout(timer);
      d.off('final', onFinal);
      resolve(r);
    };
    d.on('final', onFinal);
  });
}

/** Resolves when the link reports `deviceId` online (at once if it already is). */
export async function online(link: DeviceLink & EventEmitter, deviceId: string): Promise<void> {
  while (!link.isOnline(deviceId)) {
    const [id] = (await once(link, 'online')) as [string];
    if (id === deviceId) return;
  }
}

/** Resolves when the link reports `deviceId` offline (at once if it already is). */
export async function offline(link: DeviceLink & EventEmitter, deviceId: string): Promise<void> {
  while (link.isOnline(deviceId)) {
    const [id] = (await once(link, 'offline')) as [string];
    if (id === deviceId) return;
  }
}

export function logFile(dir: string): string {
  return join(dir, 'commands.jsonl');
}

export function states(r: CommandRecord): string[] {
  return r.history.map((h) => h.state);
}

/** Submits `count` set-interval commands `<prefix>-<i>` round-robin to `deviceIds`; returns their ids in order. */
export function submitBurst(
  d: CommandDispatcher,
  prefix: string,
  count: number,
  deviceIds: string[],
): string[] {
  const submitted: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `${prefix}-${i}`;
    d.submit({
      id,
      deviceId: deviceIds[i % deviceIds.length],
      name: 'set-interval',
      params: { intervalMs: i },
      timeoutMs: 3000,
    });
    submitted.push(id);
  }
  return submitted;
}
