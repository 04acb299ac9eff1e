/**
 * The optional Dashboard 2.0 example (flows/dashboard-2.json, with @flowfuse/node-red-dashboard installed as a
 * devDependency) beside the shipped backend flow, in a real Node-RED with a real influxd and a device over MQTT,
 * seen in a real browser (Debian's chromium via playwright-core): the page asks for the operator API key, then
 * shows the fleet table with the device online; a click on its row draws its history chart from InfluxDB, and
 * a command sent from the console ends SUCCEEDED. A wrong key shows the API's refusal and no fleet. On failure
 * a screenshot is kept.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { shippedFlow, startBackend, type Backend } from '../support/backend';
import { FailureScreenshots, launchBrowser } from '../support/browser';
import { eventually, freePort, tempDir } from '../support/servers';
import { DeviceClient } from '../../nodes/lib/device-client';

describe('the Dashboard 2.0 example flow in a real browser', () => {
  const dir = tempDir('dashboard-2');
  let backend: Backend;
  let device: DeviceClient | undefined;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  const screenshots = new FailureScreenshots(dir, () => page);

  before(async () => {
    // The flow calls the backend's API on the port Node-RED listens on (IOTB_PORT), as under `npm start`.
    const port = await freePort();
    backend = await startBackend(shippedFlow('dashboard-2.json'), { IOTB_PORT: String(port) }, { port });
    const created = await backend.api('POST', '/api/devices', { body: { id: 'lab-1', type: 'sensor' } });
    assert.equal(created.status, 201);
    device = new DeviceClient({
      url: backend.mqttUrl,
      deviceId: 'lab-1',
      token: (created.body as { token: string }).token,
    });
    await device.ready();
    const now = Date.now();
    for (let i = 0; i < 5; i++)
      await device.sendTelemetry({ ts: now - 5000 + i * 1000, temperature: 20 + i });
    await eventually('readings in InfluxDB', async () => {
      const rows = await backend.influxql(`SELECT temperature FROM telemetry WHERE device = 'lab-1'`);
      return rows.length >= 5 ? true : undefined;
    });
    ({ context, page } = await launchBrowser(dir.path, { width: 1300, height: 900 }));
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await device?.stop().catch(() => undefined);
    await context?.close();
    await backend?.stop();
    screenshots.keepOrRemove('dashboard 2.0 test');
  });

  async function enterKey(key: string): Promise<void> {
    const input = page.getByLabel('Operator API key');
    await input.fill(key);
    await input.press('Enter');
  }

  it('shows the API refusal of a wrong key and no fleet', () =>
    screenshots.run('dashboard-2-wrong-key', async () => {
      const res = await page.goto(`${backend.nr.url}/dashboard-2/fleet`);
      assert.equal(res?.status(), 200);
      await enterKey('not-a-key');
      // The fleet, alarms and command requests go out together; whichever answers last fills the status line.
      await page.getByText(/^GET \/api\/\S+: 401 missing or invalid credentials$/).waitFor();
      assert.equal(await page.locator('.nrdb-ui-table').getByText('lab-1').count(), 0);
    }));

  it('shows the fleet with presence, the device chart and a command that succeeds', () =>
    screenshots.run('dashboard-2', async () => {
      await page.goto(`${backend.nr.url}/dashboard-2/fleet`);
      await enterKey(backend.operatorKey);
      const fleet = page.locator('.nrdb-ui-table').first();
      const row = fleet.locator('tr', { hasText: 'lab-1' });
      await row.getByText('online').waitFor();
      await page.getByText(/^1 devices, /).waitFor();
      await row.click();
      // The "cleaned" series (blue, #2563eb) drawn below the legend: the readings reached the chart.
      await eventually('the history chart to draw the readings', async () =>
        (await chartPixels(page, [37, 99, 235])) > 50 ? true : undefined,
      );

      await page.getByLabel('Command').fill('led');
      await page.getByLabel('Params (JSON)').fill('{"on":true}');
      await page.getByRole('button', { name: 'send' }).click();
      await page.getByText(/led to lab-1: SUCCEEDED/).waitFor({ timeout: 30_000 });
      assert.deepEqual(pageErrors, []);
    }));
});

/**
 * Pixels of the chart's canvas close to `rgb`, below its top fifth (where the legend is). Runs in the page: no
 * named inner functions (the test loader would wrap them in a helper the page does not have).
 */
function chartPixels(page: Page, rgb: number[]): Promise<number> {
  return page.evaluate((colour) => {
    const canvas = document.querySelector('.nrdb-ui-chart canvas');
    if (!(canvas instanceof HTMLCanvasElement)) return 0;
    const ctx = canvas.getContext('2d');
    if (!ctx) return 0;
    const top = Math.floor(canvas.height / 5);
    const { data } = ctx.getImageData(0, top, canvas.width, canvas.height - top);
    let count = 0;
    for (let i = 0; i < data.length; i += 4)
      if (
        Math.abs(data[i] - colour[0]) < 40 &&
        Math.abs(data[i + 1] - colour[1]) < 40 &&
        Math.abs(data[i + 2] - colour[2]) < 40
      )
        count++;
    return count;
  }, rgb);
}
