/**
 * The iotb-quality edit dialog in a real browser (Debian's chromium via playwright-core): each field rule is a
 * form with a label on every input, a rule is added from each preset (which fills the form), every option of a
 * rule is edited, saved into the node's `rules`, and found again when the dialog reopens; no element of the
 * dialog is wider than the tray. A failed step leaves a screenshot (its path is in the error).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Locator, Page } from 'playwright-core';
import { FailureScreenshots, launchBrowser } from '../support/browser';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { repoRoot, tempDir } from '../support/servers';

/** Every label of the node's message catalog: the dialog shows each of them. */
const LABELS = Object.values(
  (
    JSON.parse(
      readFileSync(join(repoRoot, 'nodes', 'quality', 'locales', 'en-US', 'quality.json'), 'utf8'),
    ) as { 'iotb-quality': { label: Record<string, string> } }
  )['iotb-quality'].label,
);

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

/** Every option of a rule, set to something no preset says. */
const EVERY_OPTION: Record<string, string | boolean> = {
  min: '-20',
  max: '50',
  suspectMin: '-10',
  suspectMax: '40',
  rangeAction: 'reject',
  spike: false,
  spikeK: '4',
  spikeMinDeviation: '0.2',
  spikeAction: 'flag',
  maxRate: '0.3',
  rateAction: 'replace',
  flatCount: '12',
  flatSeconds: '1800',
  flatTolerance: '0.01',
  flatAction: 'reject',
  shiftCount: '4',
  replaceWith: 'linear',
  impute: 'mean',
  maxGapS: '600',
};

async function setOption(row: Locator, key: string, value: string | boolean): Promise<void> {
  const el = row.locator(`.iotb-q-${key}`);
  if (typeof value === 'boolean') await el.setChecked(value);
  else if ((await el.evaluate((e) => e.tagName)) === 'SELECT') await el.selectOption(value);
  else await el.fill(value);
}

async function readOption(row: Locator, key: string): Promise<string | boolean> {
  const el = row.locator(`.iotb-q-${key}`);
  return (await el.getAttribute('type')) === 'checkbox' ? el.isChecked() : el.inputValue();
}

/**
 * Elements of the open tray that stick out of it, and inputs without a label naming them. Runs in the page:
 * no named inner functions (the test loader would wrap them in a helper the page does not have).
 */
function layoutProblems(): { wider: string[]; unlabelled: string[] } {
  const trays = document.querySelectorAll('.red-ui-tray');
  const tray = trays[trays.length - 1];
  const box = tray.getBoundingClientRect();
  const wider: string[] = [];
  for (const e of Array.from(tray.querySelectorAll('.red-ui-tray-body *'))) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || (e as HTMLElement).offsetParent === null) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1)
      wider.push(
        `${e.tagName}.${Array.from(e.classList).join('.')} ${r.left}..${r.right} of ${box.left}..${box.right}`,
      );
  }
  const unlabelled = Array.from(tray.querySelectorAll('.iotb-q-rule input, .iotb-q-rule select'))
    .filter((e) => (e as HTMLElement).offsetParent !== null)
    .filter((e) => !document.querySelector(`label[for="${e.id}"]`)?.textContent?.trim())
    .map((e) => `${e.tagName}.${Array.from(e.classList).join('.')}`);
  return { wider: wider.slice(0, 10), unlabelled };
}

describe('iotb-quality edit dialog in a real browser', () => {
  const dir = tempDir('quality-editor');
  let nr: NodeRedProcess;
  let context: BrowserContext;
  let page: Page | undefined;
  const pageErrors: string[] = [];
  const shots = new FailureScreenshots(dir, () => page);

  before(async () => {
    nr = await startNodeRed({ flows });
    ({ context, page } = await launchBrowser(dir.path, { width: 1400, height: 900 }));
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(nr.url);
    await page.locator('[id="q"]').waitFor();
  });

  after(async () => {
    await context?.close();
    await nr?.stop();
    shots.keepOrRemove('quality editor test');
  });

  const openDialog = async (): Promise<{ tray: Locator; rows: Locator }> => {
    await page!.locator('[id="q"]').dblclick();
    const tray = page!.locator('.red-ui-tray').last();
    const rows = tray.locator('#node-input-rule-container > li');
    await rows.first().waitFor();
    return { tray, rows };
  };

  const expand = async (row: Locator): Promise<void> => {
    if ((await row.locator('.iotb-q-toggle').getAttribute('aria-expanded')) !== 'true')
      await row.locator('.iotb-q-toggle').click();
    await row.locator('.iotb-q-body').waitFor();
  };

  it('adds a rule from each preset, edits every option, saves, and finds it all again', () =>
    shots.run('quality rule form', async () => {
      let { tray, rows } = await openDialog();
      // An existing rule opens collapsed, its summary saying what it is; expanded, the preset fills the form.
      assert.equal(await rows.count(), 1);
      assert.equal(
        await rows.first().locator('.iotb-q-summary').textContent(),
        'temperature · Temperature (°C)',
      );
      await expand(rows.first());
      assert.equal(await rows.first().locator('.iotb-q-flatCount').inputValue(), '5');
      assert.equal(await rows.first().locator('.iotb-q-max').inputValue(), '85');
      assert.equal(await rows.first().locator('.iotb-q-flatSeconds').inputValue(), '3600');

      const added = [
        ['air', 'temperature', 'suspectMin', '-30'],
        ['rh', 'humidity', 'max', '100'],
        ['baro', 'pressure', 'suspectMin', '870'],
        ['load', 'power', 'spikeAction', 'flag'],
      ];
      for (const [i, [field, preset, key, filled]] of added.entries()) {
        await tray.locator('.red-ui-editableList-addButton').click();
        const row = rows.nth(i + 1);
        await row.locator('.iotb-q-field').fill(field);
        const labels = await row.locator('.iotb-q-preset option').allTextContents();
        assert.ok(labels.length === 5, labels.join(', '));
        await row.locator('.iotb-q-preset').selectOption(preset);
        assert.equal(await row.locator(`.iotb-q-${key}`).inputValue(), filled, `${preset} fills ${key}`);
      }
      const air = rows.nth(1);
      for (const [key, value] of Object.entries(EVERY_OPTION)) await setOption(air, key, value);

      assert.deepEqual(await page!.evaluate(layoutProblems), { wider: [], unlabelled: [] });
      const text = await tray.evaluate((e) => e.textContent ?? '');
      assert.deepEqual(
        LABELS.filter((label) => !text.includes(label)),
        [],
      );
      await tray.locator('#node-dialog-ok').click();
      await tray.waitFor({ state: 'detached' });

      const rules = await page!.evaluate((): unknown => (globalThis as any).RED.nodes.node('q').rules);
      const numbers = Object.fromEntries(
        Object.entries(EVERY_OPTION).map(([k, v]) => [
          k,
          typeof v === 'string' && /^-?[\d.]+$/.test(v) ? Number(v) : v,
        ]),
      );
      // Only what differs from the preset is stored: the rule stays short and follows its preset.
      assert.deepEqual(rules, [
        { field: 'temperature', preset: 'temperature', flatCount: 5 },
        { field: 'air', preset: 'temperature', ...numbers },
        { field: 'rh', preset: 'humidity' },
        { field: 'baro', preset: 'pressure' },
        { field: 'load', preset: 'power' },
      ]);

      ({ tray, rows } = await openDialog());
      assert.equal(await rows.count(), 5);
      await expand(rows.nth(1));
      const found: Record<string, string | boolean> = {};
      for (const key of Object.keys(EVERY_OPTION)) found[key] = await readOption(rows.nth(1), key);
      assert.deepEqual(found, EVERY_OPTION);
      assert.equal(await rows.nth(1).locator('.iotb-q-preset').inputValue(), 'temperature');
      for (let i = 2; i < 5; i++) await expand(rows.nth(i));
      assert.equal(await rows.nth(4).locator('.iotb-q-spikeK').inputValue(), '5');
      assert.deepEqual(await page!.evaluate(layoutProblems), { wider: [], unlabelled: [] });
      await tray.locator('#node-dialog-cancel').click();
      assert.deepEqual(pageErrors, []);
    }));
});
