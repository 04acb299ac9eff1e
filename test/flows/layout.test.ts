/**
 * Every shipped flow (each file in flows/, so a new one is covered too) reads as a diagram: no two nodes
 * overlap (Node-RED's node box sizes, approximated in test/support/flow-layout.ts), every node sits in a
 * group whose box holds it, every tab and every group explains itself with a comment node, no two groups
 * of a tab overlap, and no change, switch or function node is left with the editor's generic label.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/servers';
import {
  contains,
  groupBox,
  isCanvasNode,
  nodeBox,
  nodeFootprint,
  nodeLabel,
  overlaps,
  type FlowNode,
} from '../support/flow-layout';

const DOC_REF = /docs\/[\w.-]+\.md/g;
const files = readdirSync(join(repoRoot, 'flows')).filter((f) => f.endsWith('.json'));

const describeNode = (n: FlowNode): string => `${n.type} ${n.id} "${nodeLabel(n)}" at ${String(n.x)},${String(n.y)}`;

for (const file of files) {
  const flow = JSON.parse(readFileSync(join(repoRoot, 'flows', file), 'utf8')) as FlowNode[];
  const tabs = flow.filter((n) => n.type === 'tab');
  const groups = flow.filter((n) => n.type === 'group');
  const nodes = flow.filter(isCanvasNode);
  const byId = new Map(flow.map((n) => [n.id, n]));

  describe(`layout of flows/${file}`, () => {
    it('has no two nodes (with their buttons and status lines) overlapping', () => {
      const clashes: string[] = [];
      for (let i = 0; i < nodes.length; i++)
        for (let j = i + 1; j < nodes.length; j++) {
          const a = nodes[i];
          const b = nodes[j];
          if (a.z === b.z && overlaps(nodeFootprint(a), nodeFootprint(b)))
            clashes.push(`${describeNode(a)} overlaps ${describeNode(b)}`);
        }
      assert.deepEqual(clashes, []);
    });

    it('puts every node in a group whose box holds it', () => {
      const loose = nodes.filter((n) => typeof n.g !== 'string').map(describeNode);
      assert.deepEqual(loose, [], 'nodes outside any group');
      const outside: string[] = [];
      for (const n of nodes) {
        const g = byId.get(n.g as string);
        assert.ok(g && g.type === 'group', `${describeNode(n)}: group ${String(n.g)} does not exist`);
        assert.ok((g.nodes as string[]).includes(n.id), `${describeNode(n)} is not in ${g.id}'s node list`);
        if (!contains(groupBox(g), nodeFootprint(n))) outside.push(`${describeNode(n)} sticks out of "${String(g.name)}"`);
      }
      assert.deepEqual(outside, []);
      for (const g of groups)
        for (const member of g.nodes as string[])
          assert.equal(byId.get(member)?.g, g.id, `group "${String(g.name)}" lists ${member}, which is not in it`);
    });

    it('gives every tab and every group a comment node', () => {
      for (const tab of tabs)
        assert.ok(
          nodes.some((n) => n.z === tab.id && n.type === 'comment'),
          `tab "${String(tab.label)}" has no comment node`,
        );
      for (const g of groups) {
        assert.ok(typeof g.name === 'string' && g.name !== '', `group ${g.id} has no name`);
        assert.ok(
          (g.nodes as string[]).some((id) => byId.get(id)?.type === 'comment'),
          `group "${g.name}" has no comment node`,
        );
      }
    });

    it("points each group's comment to the docs that explain the group", () => {
      for (const g of groups) {
        const comments = (g.nodes as string[]).map((id) => byId.get(id)!).filter((n) => n.type === 'comment');
        const docs = comments.flatMap((c) => [...(typeof c.info === 'string' ? c.info : '').matchAll(DOC_REF)]);
        assert.ok(docs.length > 0, `the comment of group "${String(g.name)}" names no docs/*.md`);
        for (const [ref] of docs) assert.ok(existsSync(join(repoRoot, ref)), `group "${String(g.name)}": ${ref} does not exist`);
      }
    });

    it('keeps the groups of a tab apart', () => {
      for (let i = 0; i < groups.length; i++)
        for (let j = i + 1; j < groups.length; j++)
          if (groups[i].z === groups[j].z)
            assert.ok(
              !overlaps(groupBox(groups[i]), groupBox(groups[j])),
              `groups "${String(groups[i].name)}" and "${String(groups[j].name)}" overlap`,
            );
    });

    it('names every change, switch and function node', () => {
      const unnamed = nodes
        .filter((n) => ['change', 'switch', 'function', 'template'].includes(n.type) && !n.name)
        .map(describeNode);
      assert.deepEqual(unnamed, []);
    });
  });
}

describe('node boxes (test/support/flow-layout.ts)', () => {
  it('sizes a node as the editor does: at least 100 x 30, wider for a long label, taller for many outputs', () => {
    const box = (n: Partial<FlowNode>) => nodeBox({ id: 'n', type: 'change', x: 0, y: 0, wires: [[]], ...n });
    assert.deepEqual(box({ name: 'ab' }), { x0: -50, y0: -15, x1: 50, y1: 15 });
    const long = box({ name: 'error body {code, reason, details}' });
    assert.ok(long.x1 - long.x0 >= 260 && (long.x1 - long.x0) % 20 === 0);
    const three = box({ type: 'iotb-command', wires: [[], [], []] });
    assert.equal(three.y1 - three.y0, 45);
    assert.deepEqual(box({ type: 'link out', name: 'x' }), { x0: -15, y0: -15, x1: 15, y1: 15 });
  });
});
