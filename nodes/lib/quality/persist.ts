/**
 * The quality state on disk: one binary snapshot file per node, replaced atomically. A file that cannot be
 * read back is moved aside (`.corrupt`) and the node starts empty: losing filter history must never stop data.
 */
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../atomic-file';
import type { QualityEngine } from './engine';
import { MemoryStateStore } from './state';

export type LoadedState =
  | { status: 'none' }
  | { status: 'loaded'; store: MemoryStateStore; fieldNames: string[] }
  | { status: 'corrupt'; error: string; movedTo: string };

export function loadState(file: string, window: number, maxFields: number): LoadedState {
  if (!existsSync(file)) return { status: 'none' };
  try {
    return { status: 'loaded', ...MemoryStateStore.deserialize(readFileSync(file), window, maxFields) };
  } catch (err) {
    const movedTo = `${file}.corrupt`;
    renameSync(file, movedTo);
    return { status: 'corrupt', error: (err as Error).message, movedTo };
  }
}

export function saveState(file: string, engine: QualityEngine): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomicSync(file, engine.store.serialize(engine.fields));
}
