import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import type { NodeAPI } from 'node-red';

/** Node-RED's user directory (`settings.userDir`); the working directory where none is set (a bare test runtime). */
export function userDir(RED: NodeAPI): string {
  return RED.settings.userDir ?? process.cwd();
}

/** A file named in a node's settings: an absolute path as it is, a relative one inside the user directory. */
export function userFile(RED: NodeAPI, name: string): string {
  return isAbsolute(name) ? name : join(userDir(RED), name);
}

/** A node id as a file name part: node ids are hex, but a hand-written flow may use any text. */
export function fileSafeId(id: string): string {
  return id.replace(/[^\w.-]/g, '_');
}

/**
 * The state file of one node: `<userDir>/iotb-<kind>/<node id><suffix>` (the one naming scheme; see
 * docs/architecture.md, "Where state lives"), its directory created. A file or directory at one of the
 * `legacy` paths (the names used before this scheme) is renamed to the new name the first time, unless the new
 * one exists already; `onMigrated` hears of it.
 */
export function nodeStateFile(
  RED: NodeAPI,
  kind: string,
  nodeId: string,
  suffix: string,
  legacy: readonly string[] = [],
  onMigrated?: (from: string, to: string) => void,
): string {
  const file = join(userDir(RED), `iotb-${kind}`, `${fileSafeId(nodeId)}${suffix}`);
  mkdirSync(dirname(file), { recursive: true });
  if (!existsSync(file)) {
    const old = legacy.find((path) => path !== file && existsSync(path));
    if (old !== undefined) {
      renameSync(old, file);
      onMigrated?.(old, file);
    }
  }
  return file;
}
