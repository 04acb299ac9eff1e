/**
 * flows/backend.json as a new user meets it: imported through the editor's Import dialog into a Node-RED that
 * has none of the flow's environment variables, and deployed. The nodes that cannot work say why on the
 * canvas ("InfluxDB config invalid: URL: environment variable IOTB_INFLUX_URL is not set", "broker config
 * invalid: Host: …"), the log has one line per config node that says it, and no raw "Invalid URL" /
 * "ENOTFOUND" / "no InfluxDB configured". The canvas shows the groups with their comments; screenshots of
 * the tab (overview and close-ups) are written to <tmp>/iotb-editor-screenshots for a person to look at.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { FailureScreenshots, launchBrowser } from '../support/browser';
import { nodeBox, nodeLabel, type FlowNode } from '../support/flow-layout';
import { startNodeRed, type NodeRedProcess } from '../support/node-red';
import { repoRoot, tempDir } from '../support/servers';

const FLOW_TEXT = readFileSync(join(repoRoot, 'flows', 'backend.json'), 'utf8');
const FLOW = JSON.parse(FLOW_TEXT) as (FlowNode & { name?: string; z?: string })[];
const TAB = FLOW.find((n) => n.type === 'tab')!.id;
const SCREENSHOTS = join(tmpdir(), 'iotb-editor-screenshots');

const INFLUX_PROBLEM = 'InfluxDB config invalid: URL: environment variable IOTB_INFLUX_URL is not set';
const BROKER_PROBLEM = 'broker config invalid: Host: environment variable IOTB_MQTT_HOST is not set';

describe('flows/backend.json imported and deployed in the editor without its environment variables', () => {
  const dir = tempDir('backend-editor');
  let nr: NodeRedProcess;
  let context: BrowserContext;
  let page: Page;
  const screenshots = new FailureScreenshots(dir, () => page);
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    // The child inherits this process's environment: take the flow's variables out of it.
    for (const name of Object.keys(process.env).filter((k) => /^IOTB_(MQTT|INFLUX|PRESENCE)_/.test(k))) {
      saved[name] = process.env[name];
      Reflect.deleteProperty(process.env, name);
    }
    nr = await startNodeRed({ flows: [] });
    ({ context, page } = await launchBrowser(dir.path, { width: 1800, height: 1100 }));
    mkdirSync(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await context?.close();
    await nr?.stop();
    Object.assign(process.env, saved);
    screenshots.keepOrRemove('backend editor test');
  });

  it('imports the flow through Import and deploys it', () =>
    screenshots.run('import', async () => {
      await page.goto(nr.url);
      await page.locator('#red-ui-palette-container .red-ui-palette-node').first().waitFor();
      await page.locator('#red-ui-header-button-sidemenu').click();
      await page.locator('#menu-item-import').click();
      const text = page.locator('#red-ui-clipboard-dialog-import-text');
      await text.fill(FLOW_TEXT);
      // The dialog checks the JSON on a key press, as when a user pastes it.
      await text.press('End');
      await page.locator('#red-ui-clipboard-dialog-ok').click();
      // Imported nodes are attached to the mouse until placed: a click drops them.
      await page.locator('#red-ui-workspace-chart').click({ position: { x: 200, y: 200 } });
      await page.locator('#red-ui-header-button-deploy').click();
      // A node the editor finds misconfigured (a setting the flow file lacks) would ask for confirmation here.
      const answer = page
        .locator('.red-ui-notification')
        .filter({ hasText: /Successfully deployed|not properly configured/ })
        .first();
      await answer.waitFor();
      assert.match((await answer.textContent()) ?? '', /Successfully deployed/);
      await page.evaluate((tab) => {
        (globalThis as any).RED.workspaces.show(tab);
      }, TAB);
    }));

  it('shows on the canvas which setting and variable each config node misses', () =>
    screenshots.run('status', async () => {
      const status = async (type: string, name?: string): Promise<string[]> => {
        const ids = await page.evaluate(
          ([t, n]) =>
            ((globalThis as any).RED.nodes.filterNodes({ type: t }) as { id: string; name: string }[])
              .filter((node) => n === undefined || node.name === n)
              .map((node) => node.id),
          [type, name] as const,
        );
        assert.ok(ids.length > 0, `no ${type} ${name ?? ''} on the canvas`);
        const texts: string[] = [];
        for (const id of ids) {
          // The editor draws only what is in view: scroll the node into it, as a user looking for it would.
          await page.evaluate((nodeId) => {
            (globalThis as any).RED.view.reveal(nodeId);
          }, id);
          const label = page.locator(`[id="${id}"] .red-ui-flow-node-status-label`);
          await label.filter({ hasText: /\S/ }).waitFor();
          texts.push((await label.textContent()) ?? '');
        }
        return texts;
      };
      for (const writer of ['telemetry', 'device_events', 'commands', 'alarms'])
        assert.deepEqual(await status('iotb-influx-write', writer), [INFLUX_PROBLEM]);
      assert.deepEqual(await status('iotb-influx-query'), [INFLUX_PROBLEM]);
      assert.deepEqual(await status('iotb-device-in'), [BROKER_PROBLEM]);
      assert.deepEqual(await status('iotb-command'), [BROKER_PROBLEM]);
    }));

  it('says each problem once in the log, without the raw errors of the clients', () => {
    const log = nr.proc.output();
    const lines = (text: string): number => log.split('\n').filter((l) => l.includes(text)).length;
    assert.equal(lines(INFLUX_PROBLEM), 1, log);
    assert.equal(lines(BROKER_PROBLEM), 1, log);
    assert.doesNotMatch(log, /Invalid URL|ENOTFOUND|no InfluxDB configured/);
  });

  it('shows the groups, each with its comment (screenshots for review)', () =>
    screenshots.run('groups', async () => {
      // Each group of the file is a group in the editor, drawn with its name and its comment inside it.
      for (const g of FLOW.filter((n) => n.type === 'group' && n.z === TAB)) {
        const comment = await page.evaluate((id) => {
          const group = (globalThis as any).RED.nodes.group(id) as { nodes: { id: string; type: string }[] };
          return group.nodes.find((n) => n.type === 'comment')?.id;
        }, g.id);
        assert.ok(comment, `group "${g.name ?? ''}" has no comment in the editor`);
        await page.evaluate((id) => {
          (globalThis as any).RED.view.reveal(id);
        }, comment);
        await page.locator(`[id="${comment}"]`).waitFor();
        await page.locator('.red-ui-flow-group-label').filter({ hasText: g.name! }).first().waitFor();
      }
      // The canvas alone: palette and sidebar closed.
      await page.evaluate(() => {
        const RED = (globalThis as any).RED;
        RED.menu.setSelected('menu-item-palette', false);
        RED.menu.setSelected('menu-item-sidebar', false);
      });
      // Close-ups at 100 %: the top left (about, telemetry ingest) and the right column (device API, commands).
      const chart = page.locator('#red-ui-workspace-chart');
      const shoot = async (name: string, left: number, top: number): Promise<void> => {
        await chart.evaluate((el, [x, y]) => el.scrollTo(x, y), [left, top] as const);
        await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
      };
      await shoot('backend-telemetry', 0, 0);
      await shoot('backend-events-presence-answers', 0, 600);
      await shoot('backend-device-api', 2150, 0);
      await shoot('backend-commands-alarms', 2150, 1150);
      // The whole tab, zoomed out.
      for (let i = 0; i < 6; i++)
        await page.evaluate(() => {
          (globalThis as any).RED.actions.invoke('core:zoom-out');
        });
      await shoot('backend-overview', 0, 0);
      console.log(`screenshots of the backend tab: ${SCREENSHOTS}`);
    }));

  it('sizes nodes as the layout test assumes (test/support/flow-layout.ts), never smaller', () =>
    screenshots.run('sizes', async () => {
      // Zoomed out, every node of the tab is in view and drawn, so the editor has computed its box.
      const drawn = await page.evaluate(
        (tab) =>
          (
            (globalThis as any).RED.nodes.filterNodes({ z: tab }) as { id: string; w: number; h: number }[]
          ).map((n) => ({ id: n.id, w: n.w, h: n.h })),
        TAB,
      );
      const byId = new Map(FLOW.map((n) => [n.id, n]));
      const off: string[] = [];
      for (const d of drawn) {
        const b = nodeBox(byId.get(d.id)!);
        const w = b.x1 - b.x0;
        const h = b.y1 - b.y0;
        // At most one 20 px grid step wider than the editor draws it, and never narrower or lower.
        if (w < d.w || w > d.w + 20 || h < d.h)
          off.push(`${d.id} "${nodeLabel(byId.get(d.id)!)}": ${w}x${h}, editor ${d.w}x${d.h}`);
      }
      assert.ok(drawn.length > 100, `${drawn.length} nodes drawn`);
      assert.deepEqual(off, []);
    }));
});
