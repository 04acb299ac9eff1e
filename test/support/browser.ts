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

/**
 * Keeps a full-page screenshot of a failed browser test: `run` throws the test's error with the screenshot's
 * path added, and `keepOrRemove` (for `after`) keeps the temp dir when anything failed, else removes it.
 */
export class FailureScreenshots {
  private failed = false;

  constructor(
    private readonly dir: { path: string; remove(): void },
    private readonly page: () => Page | undefined,
  ) {}

  async run(name: string, body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (err) {
      this.failed = true;
      const file = join(this.dir.path, `${name.replace(/\W+/g, '-')}.png`);
      await this.page()
        ?.screenshot({ path: file, fullPage: true })
        .catch(() => undefined);
      (err as Error).message += `\nscreenshot: ${file}`;
      throw err;
    }
  }

  keepOrRemove(what: string): void {
    if (this.failed) console.log(`${what} failed: screenshots kept in ${this.dir.path}`);
    else this.dir.remove();
  }
}
