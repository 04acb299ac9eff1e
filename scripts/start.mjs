// `npm start`: Node-RED 4.x from devDependencies with settings.js. On first start the shipped backend flow
// is copied into the user dir, so the editor never writes to the file in flows/.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const userDir = resolve(process.env.IOTB_USER_DIR || join(root, '.node-red'));
mkdirSync(userDir, { recursive: true, mode: 0o700 });

const flowFile = join(userDir, 'flows.json');
if (!existsSync(flowFile)) {
  copyFileSync(join(root, 'flows', 'backend.json'), flowFile);
  console.log(`Copied flows/backend.json to ${flowFile}`);
}

const require = createRequire(import.meta.url);
const redMain = require.resolve('node-red/red.js');
const child = spawn(process.execPath, [redMain, '--settings', join(root, 'settings.js')], {
  stdio: 'inherit',
  env: { ...process.env, IOTB_USER_DIR: userDir },
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
