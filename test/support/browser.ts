/**
 * Debian's Chromium driven by playwright-core: a fresh profile and the flags a machine without outside network
 * needs (no background connections).
 */
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { requireBinary } from './servers';

export interface Browser {
  context: BrowserContext;
  page: Page;
}

export async function launchBrowser(
  profileDir: string,
  viewport = { width: 1400, height: 900 },
): Promise<Browser> {
  const context = await chromium.launchPersistentContext(join(profileDir, 'profile'), {
    executablePath: requireBinary('chromium', 'chromium'),
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20_000);
  return { context, page };
}
