import { readFileSync } from 'node:fs';

/**
 * The entries of an append-only JSON-lines journal, oldest first. A last line that does not parse is a torn
 * append: it was never made durable, so never acknowledged, and is skipped. A bad line before the last one is
 * corruption and throws.
 */
export function readJournal<T>(file: string): T[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const last = lines.length - 1;
  const entries: T[] = [];
  for (let i = 0; i <= last; i++) {
    if (lines[i] === '') continue;
    try {
      entries.push(JSON.parse(lines[i]) as T);
    } catch (err) {
      if (i === last) break;
      throw new Error(`journal line ${i + 1} is corrupt: ${(err as Error).message}`);
    }
  }
  return entries;
}
