import { existsSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { processAlive } from './process-alive';

/** Files open in this process: a second writer on the same file would lose the first one's changes. */
const openFiles = new Set<string>();

/**
 * One writer per state file: a lock file (`file.lock`, holding the pid) refuses a second live process, a
 * set refuses a second store in this process. A lock left by a killed process is taken over.
 */
export function lockFile(file: string, what: string): void {
  const lock = `${file}.lock`;
  if (openFiles.has(file)) throw new Error(`already open in this process (one writer per ${what} file)`);
  mkdirSync(dirname(file), { recursive: true });
  if (existsSync(lock)) {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (pid !== process.pid && processAlive(pid))
      throw new Error(`in use by process ${pid} (lock file ${lock})`);
  }
  writeFileSync(lock, String(process.pid), { mode: 0o600 });
  openFiles.add(file);
}

export function unlockFile(file: string): void {
  openFiles.delete(file);
  try {
    unlinkSync(`${file}.lock`);
  } catch {
    // already gone: nothing to release
  }
}
