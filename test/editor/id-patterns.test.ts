/**
 * The editor checks device ids and type names with the runtime's patterns, which iotb-registry exports through
 * its node settings (`RED.settings.iotbRegistryDeviceIdPattern`, `...TypeNamePattern`), not with copies of
 * its own: a real Node-RED, its editor in Debian's chromium. The lengths at the edge tell the exported pattern
 * from a copy with another bound.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { DEVICE_ID_PATTERN, TYPE_NAME_PATTERN, isValidDeviceId } from '../../nodes/lib/device-id';
import { FailureScreenshots, launchBrowser } from '../support/browser';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { tempDir } from '../support/servers';

describe('the editor checks ids with the patterns the runtime exports', () => {
  const dir = tempDir('editor-id-patterns');
  let nodeRed: NodeRedProcess;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];
  const screenshots = new FailureScreenshots(dir, () => page);

  before(async () => {
    nodeRed = await startNodeRed({ flows: [{ id: 'tab', type: 'tab', label: 'ids' }] });
    ({ context, page } = await launchBrowser(dir.path));
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(nodeRed.url);
    await page.waitForFunction(() => (globalThis as any).RED.workspaces?.active() === 'tab');
  });

  after(async () => {
    await context?.close();
    await nodeRed?.stop();
    screenshots.keepOrRemove('editor id patterns test');
  });

  it('receives the device id and type name patterns in RED.settings', async () => {
    const settings = await page.evaluate(() => {
      const RED = (globalThis as any).RED;
      return {
        deviceId: RED.settings.iotbRegistryDeviceIdPattern as unknown,
        typeName: RED.settings.iotbRegistryTypeNamePattern as unknown,
      };
    });
    assert.deepEqual(settings, { deviceId: DEVICE_ID_PATTERN.source, typeName: TYPE_NAME_PATTERN.source });
  });

  it('marks a simulator id prefix invalid exactly when the runtime refuses the ids it makes', () =>
    screenshots.run('simulator-prefix', async () => {
      await page.evaluate(() => {
        const RED = (globalThis as any).RED;
        RED.view.importNodes(
          [{ id: 'sim', type: 'iotb-simulator', z: RED.workspaces.active(), x: 200, y: 100, count: 5 }],
          { touchImport: true, applyNodeDefaults: true, notify: false },
        );
      });
      await page.locator('[id="sim"]').dblclick();
      const tray = page.locator('.red-ui-tray').last();
      const prefix = tray.locator('#node-input-idPrefix');
      const marked = async (value: string): Promise<boolean> => {
        await prefix.fill(value);
        await prefix.dispatchEvent('change');
        return prefix.evaluate((e) => e.classList.contains('input-error'));
      };
      // The last id is `<prefix>-5`: a 126-character prefix makes 128-character ids, the most the runtime takes.
      for (const value of ['sim', 'x'.repeat(126), 'x'.repeat(127), 'bad/prefix', '-sim', 'a b']) {
        const runtimeRefuses = !isValidDeviceId(`${value}-5`);
        assert.equal(await marked(value), runtimeRefuses, `prefix "${value}"`);
      }
      await tray.locator('#node-dialog-cancel').click();
      await tray.waitFor({ state: 'detached' });
      assert.deepEqual(pageErrors, []);
    }));

  it('refuses the registry type names the runtime refuses', async () => {
    const names = ['thermo', 'x'.repeat(64), 'x'.repeat(65), 'bad name', '_thermo', 'a:b.c-d_e'];
    const accepted = await page.evaluate((list) => {
      const RED = (globalThis as any).RED;
      const types = RED.nodes.getType('iotb-registry').defaults.types;
      return list.map((name) => types.validate([{ name }]) as boolean);
    }, names);
    assert.deepEqual(
      accepted,
      names.map((name) => TYPE_NAME_PATTERN.test(name)),
    );
    assert.deepEqual(accepted, [true, true, false, false, false, true]);
  });
});
