import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { processAlive } from '../process-alive';

export class SpoolLockedError extends Error {
  readonly code = 'SPOOL_LOCKED';
  constructor(message: string) {
    super(message);
    this.name = 'SpoolLockedError';
  }
}

/** Lock files held by this process, shared by every copy of this module (tests load source beside dist). */
const held: Set<string> = ((globalThis as Record<symbol, Set<string> | undefined>)[
  Symbol.for('node-red-contrib-iot-backend.spool-locks')
] ??= new Set<string>());

function readOwner(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Takes `file` as a one-writer lock holding this process's pid. The pid is written to a temp file that is then
 * hard-linked into place, so the lock never exists without its owner. A lock whose pid is dead — or is our own
 * pid but not held by this process (a container restarted with the same pid) — is stale and taken over.
 */
export function acquireLock(file: string, what: string): void {
  if (held.has(file)) throw new SpoolLockedError(`${what} is already open in this process (lock ${file})`);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, file);
        held.add(file);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readOwner(file);
      if (owner === undefined) continue;
      const pid = Number.parseInt(owner, 10);
      if (pid !== process.pid && processAlive(pid))
        throw new SpoolLockedError(
          `${what} is in use by process ${pid} (lock ${file}); only one process may write a spool`,
        );
      // Stale. Move it aside and make sure what we moved is the lock we judged, not a fresh one of a racer.
      const aside = `${file}.stale.${process.pid}`;
      try {
        renameSync(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (readOwner(aside) !== owner) {
        try {
          linkSync(aside, file);
        } finally {
          unlinkSync(aside);
        }
        throw new SpoolLockedError(
          `${what}: another process took over the stale lock ${file} at the same time`,
        );
      }
      unlinkSync(aside);
    }
    throw new SpoolLockedError(`${what}: could not take the lock ${file}`);
  } finally {
    unlinkSync(tmp);
  }
}

export function releaseLock(file: string): void {
  if (!held.delete(file)) return;
  if (readOwner(file) === `${process.pid}\n`) unlinkSync(file);
}
