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

/**
 * A test that cancels an edit dialog as soon as it renders may meet this race: Monaco (the editor's code editor,
 * two of them in iotb-validate's dialog) can then run a computation it had scheduled on a model the dialog has just disposed,
 * and throws "Model is disposed!" from its own code (Node-RED's `destroy()` disposes model and editor). Only
 * that error, raised entirely inside Monaco, is set aside; any other page error fails the test.
 */
export function isMonacoDisposeRace(err: Error): boolean {
  const frames = (err.stack ?? '').split('\n').filter((line) => line.trim().startsWith('at '));
  return (
    // The message can repeat itself after a blank line ("Model is disposed!\n\nError: Model is disposed!").
    /^Model is disposed!(\s+Error: Model is disposed!)*$/.test(err.message) &&
    frames.length > 0 &&
    frames.every((line) => line.includes('/vendor/monaco/'))
  );
}
