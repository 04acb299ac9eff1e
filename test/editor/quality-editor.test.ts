/**
 * The iotb-quality edit dialog in a real browser (Debian's chromium via playwright-core): the presets come from
 * the runtime, a field rule added in the editable list with a preset and an override is saved into the node's
 * `rules`, and an existing rule list is shown again when the dialog reopens.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { launchBrowser } from '../support/browser';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { tempDir } from '../support/servers';

const flows = [
  { id: 'tab', type: 'tab', label: 'q' },
  {
    id: 'q',
    type: 'iotb-quality',
    z: 'tab',
    x: 200,
    y: 100,
    persist: false,
    rules: [{ field: 'temperature', preset: 'temperature', flatCount: 5 }],
    wires: [[], []],
  },
];

describe('iotb-quality edit dialog in a real browser', () => {
  const profile = tempDir('quality-editor');
  let nr: NodeRedProcess;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    nr = await startNodeRed({ flows });
    ({ context, page } = await launchBrowser(profile.path, { width: 1400, height: 900 }));
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(nr.url);
    await page.locator('[id="q"]').waitFor();
  });

  after(async () => {
    await context?.close();
    await nr?.stop();
    profile.remove();
  });

  it('edits the rule list with presets from the runtime and saves it into the node', async () => {
    await page.locator('[id="q"]').dblclick();
    const tray = page.locator('.red-ui-tray').last();
    const rows = tray.locator('#node-input-rule-container > li');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1);
    assert.equal(await rows.first().locator('.iotb-q-field').inputValue(), 'temperature');
    assert.equal(await rows.first().locator('.iotb-q-flatCount').inputValue(), '5');
    // Blank boxes show what the preset gives.
    assert.equal(await rows.first().locator('.iotb-q-max').getAttribute('placeholder'), 'max 85');

    await tray.locator('.red-ui-editableList-addButton').click();
    const added = rows.nth(1);
    await added.locator('.iotb-q-field').fill('humidity');
    const presetLabels = await added.locator('.iotb-q-preset option').allTextContents();
    assert.ok(presetLabels.includes('Relative humidity (%)'), presetLabels.join(', '));
    await added.locator('.iotb-q-preset').selectOption('humidity');
    await added.locator('.iotb-q-maxGapS').fill('600');
    await added.locator('.iotb-q-impute').selectOption('linear');
    await tray.locator('#node-dialog-ok').click();
    await tray.waitFor({ state: 'detached' });

    const rules = await page.evaluate((): unknown => (globalThis as any).RED.nodes.node('q').rules);
    assert.deepEqual(rules, [
      { field: 'temperature', preset: 'temperature', flatCount: 5 },
      { field: 'humidity', preset: 'humidity', maxGapS: 600, impute: 'linear' },
    ]);
    assert.deepEqual(pageErrors, []);
  });
});
