/**
 * `npm start` (scripts/start.mjs) on a fresh user dir prints an operator API key once; with it the HTTP API
 * answers, and the dashboard (GET /dashboard) renders in a real browser (Debian's chromium, driven by
 * playwright-core): the device list with presence, the chart of a device's readings from InfluxDB, and a command
 * sent from the page that ends SUCCEEDED, an alarm acknowledged from the page. On failure a screenshot is kept.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BrowserContext, Page } from 'playwright-core';
import { apiClient } from '../support/backend';
import { FailureScreenshots, launchBrowser } from '../support/browser';
import { DeviceClient } from '../../nodes/lib/device-client';
import {
  eventually,
  freePort,
  startInfluxd,
  tempDir,
  type ManagedProcess,
  type Server,
} from '../support/servers';
import { startScript } from '../support/start-script';

describe('npm start: first-run API key and the dashboard in a real browser', () => {
  const dir = tempDir('dashboard');
  let url: string;
  let apiKey: string;
  let mqttPort: number;
  let influx: Server;
  let nodeRed: ManagedProcess;
  let device: DeviceClient | undefined;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  const screenshots = new FailureScreenshots(dir, () => page);

  before(async () => {
    influx = await startInfluxd({ database: 'iot' });
    const port = await freePort();
    mqttPort = await freePort();
    url = `http://127.0.0.1:${port}`;
    nodeRed = await startScript(join(dir.path, 'user'), port, {
      IOTB_MQTT_PORT: `${mqttPort}`,
      IOTB_INFLUX_URL: influx.url,
      IOTB_INFLUX_DB: 'iot',
    });
    apiKey = /Operator API key[^\n]*\n\*\*\*\s+(\S+)/.exec(nodeRed.output())?.[1] ?? '';
    await eventually('the API to answer', async () => {
      const res = await fetch(`${url}/api/health`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    });
    ({ context, page } = await launchBrowser(dir.path, { width: 1300, height: 800 }));
    page.on('pageerror', (err) => pageErrors.push(err.message));
  });

  after(async () => {
    await device?.stop().catch(() => undefined);
    await context?.close();
    await nodeRed?.stop();
    await influx?.stop();
    screenshots.keepOrRemove('dashboard test');
  });

  it('prints an operator API key once that the API accepts', async () => {
    assert.match(apiKey, /^iotbk_/);
    assert.equal((nodeRed.output().match(/Operator API key/g) ?? []).length, 1);
    const api = apiClient(url, apiKey);
    assert.equal((await api('GET', '/api/devices')).status, 200);
    const created = await api('POST', '/api/devices', { body: { id: 'lab-1', type: 'sensor' } });
    assert.equal(created.status, 201);
    const { token } = created.body as { token: string };
    device = new DeviceClient({ url: `mqtt://127.0.0.1:${mqttPort}`, deviceId: 'lab-1', token });
    await device.ready();
    const now = Date.now();
    for (let i = 0; i < 5; i++)
      await device.sendTelemetry({ ts: now - 5000 + i * 1000, temperature: 20 + i });
    await eventually('readings in InfluxDB', async () => {
      const { body } = await api('GET', '/api/devices/lab-1/telemetry?field=temperature');
      return (body as { readings: unknown[] }).readings.length >= 5 ? true : undefined;
    });
  });

  it('renders devices, health and a device chart, and sends a command that succeeds', () =>
    screenshots.run('dashboard', async () => {
      const res = await page.goto(`${url}/dashboard`);
      assert.equal(res?.status(), 200);
      assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'self'/);
      await page.locator('#health').getByText('broker: ok').waitFor();
      await page.locator('#apikey').fill(apiKey);
      await page.locator('#apikey').dispatchEvent('change');
      const row = page.locator('#devices tr', { hasText: 'lab-1' });
      await row.getByText('online').waitFor();
      // Refreshes update rows in place: a row rebuilt under the pointer would swallow the click.
      const shownRow = await row.elementHandle();
      await row.click();
      await page.locator('#dev-title').getByText('lab-1 (sensor)').waitFor();
      await page
        .locator('#chart-msg')
        .getByText(/^5 readings/)
        .waitFor();
      const points = await page.locator('#chart polyline').getAttribute('points');
      assert.equal(points?.trim().split(' ').length, 5);

      await page.locator('#cmd-name').fill('led');
      await page.locator('#cmd-params').fill('{"on":true}');
      await page.locator('#cmd button').click();
      await page.locator('#commands tr', { hasText: 'SUCCEEDED' }).waitFor();
      // By now the click's refresh has reloaded the list.
      assert.equal(await shownRow?.evaluate((tr: { isConnected: boolean }) => tr.isConnected), true);
      assert.deepEqual(pageErrors, []);
    }));

  it('shows an active alarm and acknowledges it from the page', () =>
    screenshots.run('dashboard-alarms', async () => {
      // A fresh device: lab-1's history would make iotb-quality treat a jump to 70 °C as a spike.
      const api = apiClient(url, apiKey);
      const created = await api('POST', '/api/devices', { body: { id: 'oven-1', type: 'sensor' } });
      const key = (created.body as { token: string }).token;
      for (const temperature of [70, 71, 72])
        assert.equal(
          (await api('POST', '/api/devices/oven-1/telemetry', { key, body: { temperature } })).status,
          202,
        );
      const alarm = page.locator('#alarms tr', { hasText: 'sensor-hot' });
      await alarm.getByText('ACTIVE_UNACK').waitFor({ timeout: 20_000 });
      await page.locator('#alarms-count').getByText('(1 active)').waitFor();
      await alarm.getByRole('button', { name: 'Acknowledge' }).click();
      await alarm.getByText('ACTIVE_ACK').waitFor();
      assert.equal(await alarm.getByRole('button').count(), 0);
      const listed = await api('GET', '/api/alarms?device=oven-1');
      assert.match((listed.body as { ackBy: string }[])[0].ackBy, /^apiKey:/);
      assert.deepEqual(pageErrors, []);
    }));
});
