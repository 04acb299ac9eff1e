/**
 * Every node of the package in the editor of a real Node-RED (Debian's chromium via playwright-core): each edit
 * dialog (every tab of it; the config nodes' own dialogs too), every output port's tooltip, the palette and
 * its hover help, and the result of iotb-validate's Test button show text from the message catalogs, never a
 * raw catalog key such as `iotb-validate.editor.syntaxOk`. The editor conventions of docs/architecture.md hold:
 * one colour per node family (none is core's inject colour), no two nodes share an icon, the Name row is the
 * last row of every dialog. Data-driven from package.json. On failure a screenshot is kept.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { OPERATIONS } from '../../nodes/lib/provision/operations';
import { FailureScreenshots, isMonacoDisposeRace, launchBrowser } from '../support/browser';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { repoRoot, tempDir } from '../support/servers';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  'node-red': { nodes: Record<string, string> };
};
const TYPES = Object.keys(pkg['node-red'].nodes);

/** A key of a node's message catalog, shown as is because the lookup went to the wrong catalog. */
const RAW_KEY = /\biotb-[a-z-]+\.[a-z]/;

/** The node families of docs/architecture.md, "Editor conventions"; config nodes have no colour. */
const FAMILY: Record<string, string> = {
  'iotb-auth': 'identity',
  'iotb-provision': 'identity',
  'iotb-device-in': 'identity',
  'iotb-mqtt-in': 'identity',
  'iotb-presence': 'identity',
  'iotb-validate': 'validation',
  'iotb-quality': 'validation',
  'iotb-influx-write': 'storage',
  'iotb-influx-query': 'storage',
  'iotb-command': 'commands',
  'iotb-twin': 'commands',
  'iotb-firmware': 'commands',
  'iotb-health': 'operations',
  'iotb-metrics': 'operations',
  'iotb-alarm': 'operations',
  'iotb-simulator': 'operations',
};
const CORE_INJECT_COLOUR = '#a6bbcf';

interface TypeInfo {
  type: string;
  category: string;
  color: string;
  icon: string;
  outputs: number;
}

/**
 * The text of the open tray a person can read: what is rendered, placeholders and tooltips. Runs in the
 * page: no named inner functions (the test loader would wrap them in a helper the page does not have).
 */
function trayText(): string {
  const trays = document.querySelectorAll('.red-ui-tray');
  const tray = trays[trays.length - 1] as HTMLElement;
  const parts = [tray.innerText];
  for (const e of Array.from(tray.querySelectorAll('[placeholder], [title]'))) {
    if ((e as HTMLElement).offsetParent === null) continue;
    parts.push(e.getAttribute('placeholder') ?? '', e.getAttribute('title') ?? '');
  }
  return parts.join('\n');
}

function rawKeys(text: string): string[] {
  return text.split('\n').filter((line) => RAW_KEY.test(line));
}

describe('the editor shows catalog text in every dialog, port label and the palette', () => {
  const dir = tempDir('editor-dialogs');
  let nodeRed: NodeRedProcess;
  let context: BrowserContext;
  let page: Page;
  let types: TypeInfo[];
  const pageErrors: string[] = [];

  const screenshots = new FailureScreenshots(dir, () => page);

  before(async () => {
    nodeRed = await startNodeRed({ flows: [{ id: 'tab', type: 'tab', label: 'all nodes' }] });
    ({ context, page } = await launchBrowser(dir.path, { width: 1400, height: 1000 }));
    page.on('pageerror', (err) => {
      if (!isMonacoDisposeRace(err)) pageErrors.push(err.message);
    });
    await page.goto(nodeRed.url);
    await page.locator('#red-ui-palette-container .red-ui-palette-node').first().waitFor();
    // The palette can be drawn before the flows are loaded: import only once the deployed tab is active.
    await page.waitForFunction(() => (globalThis as any).RED.workspaces.active() === 'tab');
    types = await page.evaluate((list) => {
      const RED = (globalThis as any).RED;
      return list.map((type) => {
        const def = RED.nodes.getType(type);
        return {
          type,
          category: def.category as string,
          color: String(def.color ?? '').toLowerCase(),
          icon: String(def.icon ?? ''),
          outputs: (def.outputs ?? 0) as number,
        };
      });
    }, TYPES);
    // Every flow node on the workspace, not deployed: the dialogs and ports are the editor's alone.
    const flowTypes = types.filter((t) => t.category !== 'config');
    await page.evaluate(
      (list) => {
        const RED = (globalThis as any).RED;
        RED.view.importNodes(
          list.map((type, i) => ({
            id: `n${i}`,
            type,
            z: RED.workspaces.active(),
            x: 150 + Math.floor(i / 8) * 420,
            y: 60 + (i % 8) * 90,
          })),
          // Placed where given (not attached to the pointer), with each type's default settings.
          { touchImport: true, applyNodeDefaults: true, notify: false },
        );
        RED.view.select([]);
      },
      flowTypes.map((t) => t.type),
    );
  });

  after(async () => {
    await context?.close();
    await nodeRed?.stop();
    screenshots.keepOrRemove('editor dialogs test');
  });

  it('colours each node family alike and apart from the others, with an icon of its own per node', () => {
    const flowTypes = types.filter((t) => t.category !== 'config');
    assert.deepEqual(flowTypes.map((t) => t.type).sort(), Object.keys(FAMILY).sort());
    const colourOf = new Map<string, string>();
    for (const t of flowTypes) {
      assert.notEqual(t.color, CORE_INJECT_COLOUR, `${t.type} has core's inject colour`);
      const family = FAMILY[t.type];
      const seen = colourOf.get(family);
      if (seen) assert.equal(t.color, seen, `${t.type}: colour of family ${family}`);
      else colourOf.set(family, t.color);
    }
    assert.equal(new Set(colourOf.values()).size, colourOf.size, 'two families share a colour');
    const icons = flowTypes.map((t) => t.icon);
    assert.equal(new Set(icons).size, icons.length, `icons shared: ${icons.join(', ')}`);
  });

  it('opens every node dialog, each tab of it, with catalog text only and the Name row last', () =>
    screenshots.run('dialogs', async () => {
      const problems: string[] = [];
      for (const t of types) {
        const config = t.category === 'config';
        if (config) {
          await page.evaluate((type) => {
            (globalThis as any).RED.editor.editConfig('', type, '_ADD_');
          }, t.type);
        } else {
          const id = `n${types.filter((x) => x.category !== 'config').indexOf(t)}`;
          await page.locator(`[id="${id}"]`).dblclick();
        }
        const tray = page.locator('.red-ui-tray').last();
        await tray.locator('.form-row').first().waitFor({ state: 'visible' });
        const prefix = config ? 'node-config-input' : 'node-input';
        // The rows of the node's own form (the other tabs have rows of their own).
        const lastRow = await tray.locator(`#${prefix}-name`).evaluate(
          (input) =>
            Array.from(input.closest('.form-row')?.parentElement?.children ?? [])
              .filter((e) => e.classList.contains('form-row'))
              .at(-1) === input.closest('.form-row'),
        );
        if (!lastRow) problems.push(`${t.type}: the Name row is not the last row`);
        // A list of rules (iotb-alarm, iotb-quality) shows its rows' texts once it has a row.
        for (const add of await tray.locator('.red-ui-editableList-addButton:visible').all())
          await add.click();
        // A narrow tray shows the tabs after the first as icon buttons: the tab's own link still selects it.
        for (const tab of await tray.locator('.red-ui-tab a.red-ui-tab-label').all()) {
          await tab.dispatchEvent('click');
          problems.push(...rawKeys(await page.evaluate(trayText)).map((line) => `${t.type}: ${line}`));
        }
        await tray.locator(config ? '#node-config-dialog-cancel' : '#node-dialog-cancel').click();
        await tray.waitFor({ state: 'detached' });
      }
      assert.deepEqual(problems, []);
      assert.deepEqual(pageErrors, []);
    }));

  it('labels every output port in its tooltip with catalog text', () =>
    screenshots.run('ports', async () => {
      const labels: string[] = [];
      const flowTypes = types.filter((t) => t.category !== 'config');
      for (const [i, t] of flowTypes.entries()) {
        const ports = page.locator(`[id="n${i}"] .red-ui-flow-port-output .red-ui-flow-port`);
        assert.equal(await ports.count(), t.outputs, t.type);
        if (t.outputs < 2) continue; // one output: nothing to tell apart
        for (let p = 0; p < t.outputs; p++) {
          await ports.nth(p).hover();
          const tooltip = page.locator('.red-ui-flow-port-tooltip');
          await tooltip.waitFor();
          labels.push(`${t.type}[${p}]: ${await tooltip.textContent()}`);
          await page.mouse.move(5, 5);
          await tooltip.waitFor({ state: 'detached' });
        }
      }
      assert.ok(labels.length >= 20, `only ${labels.length} labelled ports`);
      assert.deepEqual(
        labels.filter((l) => RAW_KEY.test(l.replace(/^[^:]+: /, ''))),
        [],
      );
      assert.ok(labels.includes('iotb-validate[0]: valid readings'), labels.join('\n'));
    }));

  it('shows catalog text in the palette and its hover help', () =>
    screenshots.run('palette', async () => {
      const problems = rawKeys(await page.locator('#red-ui-palette').innerText());
      for (const t of types.filter((x) => x.category !== 'config')) {
        await page.locator(`.red-ui-palette-node[data-palette-type="${t.type}"]`).hover();
        const help = page.locator('.red-ui-popover').last();
        await help.waitFor();
        problems.push(...rawKeys(await help.innerText()));
        await page.mouse.move(700, 5);
        await help.waitFor({ state: 'hidden' });
      }
      assert.deepEqual(problems, []);
    }));

  it("runs iotb-validate's Test and shows the verdict in words", () =>
    screenshots.run('validate-test', async () => {
      const index = types.filter((t) => t.category !== 'config').findIndex((t) => t.type === 'iotb-validate');
      await page.locator(`[id="n${index}"]`).dblclick();
      const tray = page.locator('.red-ui-tray').last();
      await tray.locator('#node-input-schemaSource').selectOption('inline');
      await tray.locator('#node-input-schema-syntax').getByText('valid JSON').waitFor();
      await tray.locator('#node-input-test').click();
      const result: Locator = tray.locator('#node-input-test-result');
      // The default sample's 999 °C is above the default schema's maximum.
      await result.getByText(/^rejected SCHEMA: /).waitFor();
      assert.deepEqual(rawKeys(await page.evaluate(trayText)), []);
      await tray.locator('#node-dialog-cancel').click();
      await tray.waitFor({ state: 'detached' });
      assert.deepEqual(pageErrors, []);
    }));

  it("lists iotb-provision's operations from the runtime's own list", () =>
    screenshots.run('provision-operations', async () => {
      const index = types
        .filter((t) => t.category !== 'config')
        .findIndex((t) => t.type === 'iotb-provision');
      await page.locator(`[id="n${index}"]`).dblclick();
      const tray = page.locator('.red-ui-tray').last();
      const options = await tray
        .locator('#node-input-operation option')
        .evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
      assert.deepEqual(options, ['msg', ...OPERATIONS]);
      await tray.locator('#node-dialog-cancel').click();
      await tray.waitFor({ state: 'detached' });
    }));
});
