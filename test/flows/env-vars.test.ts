/**
 * Every environment variable a shipped flow reads is in the one table of docs/backend.md
 * ("Environment variables"), and the table names no variable the flows do not read. A flow reads a variable
 * where a setting is exactly `${NAME}` (what Node-RED substitutes); `${...}` inside function code or a comment's
 * text is not a setting.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/servers';

const ENV_SETTING = /^\$\{([^}\s]+)\}$/;

function settingsVariables(value: unknown, found: Set<string>): void {
  if (typeof value === 'string') {
    const m = ENV_SETTING.exec(value);
    if (m) found.add(m[1]);
  } else if (Array.isArray(value)) for (const v of value) settingsVariables(v, found);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) settingsVariables(v, found);
}

function tableVariables(): Set<string> {
  const doc = readFileSync(join(repoRoot, 'docs', 'backend.md'), 'utf8');
  const section = doc.split(/^## /m).find((s) => s.startsWith('Environment variables\n'));
  assert.ok(section, 'docs/backend.md has a section "Environment variables"');
  const names = [...section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]);
  return new Set(names);
}

describe('environment variables of the shipped flows', () => {
  const used = new Map<string, string[]>();
  for (const file of readdirSync(join(repoRoot, 'flows')).filter((f) => f.endsWith('.json'))) {
    const found = new Set<string>();
    for (const node of JSON.parse(readFileSync(join(repoRoot, 'flows', file), 'utf8')) as unknown[])
      settingsVariables(node, found);
    for (const name of found) used.set(name, [...(used.get(name) ?? []), file]);
  }

  it('documents every variable a flow reads in the one table of docs/backend.md', () => {
    const table = tableVariables();
    const missing = [...used].filter(([name]) => !table.has(name)).map(([n, files]) => `${n} (${files.join(', ')})`);
    assert.deepEqual(missing, []);
    assert.ok(used.has('IOTB_INFLUX_URL') && used.has('IOTB_MQTT_HOST'), 'the scan finds the backend variables');
  });

  it('lists no variable that no flow reads', () => {
    const stale = [...tableVariables()].filter((name) => !used.has(name));
    assert.deepEqual(stale, []);
  });
});
