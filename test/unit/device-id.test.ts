/**
 * The id alphabet is written once (nodes/lib/device-id.ts): the registry, the broker and the editor (through
 * iotb-registry's exported settings) use that pattern, and no other file spells out a copy that could drift.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  DEVICE_ID_MAX_LENGTH,
  DEVICE_ID_PATTERN,
  TYPE_NAME_MAX_LENGTH,
  TYPE_NAME_PATTERN,
  isValidDeviceId,
} from '../../nodes/lib/device-id';
import { repoRoot } from '../support/servers';

const PATTERN_FILE = 'nodes/lib/device-id.ts';

/** The pattern's fixed part, `^` and the length bound left off: taken from the runtime, not written here. */
const alphabet = DEVICE_ID_PATTERN.source.slice(1, DEVICE_ID_PATTERN.source.indexOf('{'));

/** Tracked and new (not ignored) files of the repository, text only. */
function repositoryTexts(): { file: string; text: string }[] {
  return execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: repoRoot,
    encoding: 'utf8',
  })
    .split('\0')
    .filter(Boolean)
    .flatMap((file) => {
      let bytes: Buffer;
      try {
        bytes = readFileSync(join(repoRoot, file));
      } catch {
        return []; // deleted in the work tree
      }
      return bytes.subarray(0, 8000).includes(0) ? [] : [{ file, text: bytes.toString('utf8') }];
    });
}

describe('device id pattern', () => {
  it('takes 1 to 128 characters of A-Z a-z 0-9 _ . : -, starting with a letter or digit', () => {
    for (const id of ['d1', 'a', 'sensor-01.site:3_b', 'x'.repeat(DEVICE_ID_MAX_LENGTH)])
      assert.ok(isValidDeviceId(id), id);
    for (const id of [
      '',
      '-d1',
      '_d1',
      'a/b',
      'a+b',
      'a#b',
      'a b',
      'ä',
      'x'.repeat(DEVICE_ID_MAX_LENGTH + 1),
      42,
    ])
      assert.ok(!isValidDeviceId(id), String(id));
  });

  it('gives type names the same alphabet, up to 64 characters', () => {
    assert.ok(TYPE_NAME_PATTERN.test('x'.repeat(TYPE_NAME_MAX_LENGTH)));
    assert.ok(!TYPE_NAME_PATTERN.test('x'.repeat(TYPE_NAME_MAX_LENGTH + 1)));
    assert.ok(TYPE_NAME_PATTERN.source.startsWith(`^${alphabet}{`));
  });

  it(`is spelled out in ${PATTERN_FILE} only; a document that states it states the runtime's`, () => {
    const copies: string[] = [];
    let documented = 0;
    for (const { file, text } of repositoryTexts()) {
      if (file === PATTERN_FILE || !text.includes(alphabet)) continue;
      if (file.endsWith('.md')) {
        // Docs state the external contract for device makers: exactly as the runtime checks it.
        const stated = text.split(alphabet).length - 1;
        const exact = text.split(DEVICE_ID_PATTERN.source).length - 1;
        if (stated === exact) documented++;
        else copies.push(`${file}: states a pattern other than ${DEVICE_ID_PATTERN.source}`);
      } else copies.push(file);
    }
    assert.deepEqual(copies, []);
    assert.ok(
      readFileSync(join(repoRoot, PATTERN_FILE), 'utf8').includes(alphabet),
      `${PATTERN_FILE} no longer spells the alphabet this test looks for`,
    );
    assert.ok(documented >= 1, 'docs/architecture.md states the device id pattern');
  });
});
