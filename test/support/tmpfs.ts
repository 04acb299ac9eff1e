/**
 * A small tmpfs for disk-full tests: the kernel's own ENOSPC, short writes included. Mounting needs root (CI
 * runs the tests as root); without it the test fails with a message that says so.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './servers';

export interface Tmpfs {
  path: string;
  /** Unmounts and removes the mount point. */
  remove(): void;
}

export function mountTmpfs(path: string, size: string): void {
  if (process.getuid?.() !== 0)
    throw new Error(
      `this test mounts a ${size} tmpfs to fill it (mount -t tmpfs) and must run as root, as CI does; uid is ${process.getuid?.()}`,
    );
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', path], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`mount -t tmpfs -o size=${size} tmpfs ${path} failed: ${(err as Error).message}`);
  }
}

/** A fresh tmpfs of `size` (e.g. '2m') in a temp dir. */
export function tmpfs(prefix: string, size: string): Tmpfs {
  const dir = tempDir(prefix);
  const path = join(dir.path, 'mnt');
  mkdirSync(path);
  try {
    mountTmpfs(path, size);
  } catch (err) {
    dir.remove();
    throw err;
  }
  return {
    path,
    remove() {
      execFileSync('umount', [path]);
      dir.remove();
    },
  };
}
