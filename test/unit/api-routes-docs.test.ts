/**
 * The HTTP routes the docs name are the routes the shipped backend flow serves, both ways: the route table of
 * docs/backend.md (HTTP API) against every `http in` node of flows/backend.json, and the command routes of
 * docs/commands.md against the routes whose messages reach iotb-command.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { shippedFlow, type FlowNode } from '../support/backend';
import { repoRoot } from '../support/servers';

const flow = shippedFlow('backend.json');
const byId = new Map(flow.map((n) => [n.id, n]));

/** `POST /api/devices/{id}/commands` for an `http in` node with url `/api/devices/:id/commands`. */
const routeOf = (n: FlowNode): string =>
  `${String(n.method).toUpperCase()} ${String(n.url).replace(/:(\w+)/g, '{$1}')}`;

/** The ids of every node a message from `start` can reach over wires. */
function reachable(start: FlowNode): Set<string> {
  const seen = new Set<string>();
  const todo = [start];
  for (let n = todo.pop(); n; n = todo.pop()) {
    for (const port of (n.wires ?? []) as string[][])
      for (const id of port)
        if (!seen.has(id)) {
          seen.add(id);
          const next = byId.get(id);
          if (next) todo.push(next);
        }
  }
  return seen;
}

/** Routes in the first column of the Markdown tables of one section (from its heading to the next `## `). */
function documentedRoutes(file: string, heading: string): string[] {
  const text = readFileSync(join(repoRoot, 'docs', file), 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `${file} has a section "${heading}"`);
  const end = text.indexOf('\n## ', start + heading.length + 1);
  const section = text.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\| `((?:GET|POST|PUT|PATCH|DELETE) \/[^`]*)`/gm)].map((m) => m[1]);
}

const sorted = (routes: Iterable<string>): string[] => [...new Set(routes)].sort();

describe('the docs name exactly the routes of the shipped backend flow', () => {
  const httpIn = flow.filter((n) => n.type === 'http in');

  it('docs/backend.md, HTTP API: every route of the flow, and no route the flow does not serve', () => {
    const served = sorted(httpIn.map(routeOf));
    const documented = documentedRoutes('backend.md', '## HTTP API');
    assert.equal(documented.length, new Set(documented).size, 'each route documented once');
    assert.deepEqual(sorted(documented), served);
  });

  it('docs/commands.md: every route that reaches iotb-command, and only those', () => {
    const command = flow.find((n) => n.type === 'iotb-command');
    assert.ok(command);
    const served = sorted(httpIn.filter((n) => reachable(n).has(command.id)).map(routeOf));
    assert.ok(served.includes('GET /api/kill-switch'));
    assert.deepEqual(
      sorted(documentedRoutes('commands.md', '## HTTP routes in the shipped backend')),
      served,
    );
  });
});
