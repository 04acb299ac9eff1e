/** `npm start` after its build step: scripts/start.mjs on a temp user dir, as the README runs it. */
import { join } from 'node:path';
import { freePort, repoRoot, startProcess, waitForOutput, waitForPort, type ManagedProcess } from './servers';

/** The environment without any IOTB_ variable (or PORT) of the developer's shell, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('IOTB_') && k !== 'PORT') env[k] = v;
  return { ...env, ...extra };
}

/** The last line of the summary scripts/start.mjs prints once the editor answers. */
export const SUMMARY_END = /^=+ ready =+$/m;

/**
 * scripts/start.mjs with its user dir in `userDir` and the editor on `port`. The embedded broker listens on a
 * free port of 127.0.0.1 unless `env` says otherwise, so tests never contend for 1883. Resolves once the flows
 * run and the start summary is printed; stops the process if it does not get there.
 */
export async function startScript(
  userDir: string,
  port: number,
  env: Record<string, string> = {},
): Promise<ManagedProcess> {
  const defaults = { IOTB_MQTT_HOST: '127.0.0.1', IOTB_MQTT_PORT: String(await freePort()) };
  const proc = startProcess(process.execPath, [join(repoRoot, 'scripts', 'start.mjs')], {
    env: cleanEnv({ ...defaults, ...env, IOTB_USER_DIR: userDir, IOTB_PORT: String(port) }),
  });
  try {
    await waitForOutput(proc, /Started flows/, 60_000);
    await waitForPort(port, proc.child);
    await waitForOutput(proc, SUMMARY_END, 30_000);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}
