// Node-RED settings for `npm start`: this package loaded from the checkout, secure by default.
// Every environment variable is documented in README.md ("Configuration").
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const userDir = path.resolve(process.env.IOTB_USER_DIR || path.join(__dirname, '.node-red'));
fs.mkdirSync(userDir, { recursive: true, mode: 0o700 });

// The package's own atomic writer (tmp file, fsync, rename): a crash never leaves a half-written secret.
let writeFileAtomicSync;
try {
  ({ writeFileAtomicSync } = require('./dist/nodes/lib/atomic-file.js'));
} catch {
  throw new Error('settings.js loads the built package: run `npm run build` first (`npm start` does)');
}

// Secrets generated on first start live here, readable by the owner only.
const secretsFile = path.join(userDir, '.iotb-secrets.json');

function readSecrets() {
  let text;
  try {
    text = fs.readFileSync(secretsFile, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw new Error(`cannot read ${secretsFile}: ${err.message}`);
  }
  const mode = fs.statSync(secretsFile).mode & 0o777;
  if (mode & 0o077) {
    process.stderr.write(
      `WARNING: ${secretsFile} was readable by others (mode ${mode.toString(8)}); now 0600. ` +
        'Consider its secrets exposed: delete the file to generate new ones.\n',
    );
    fs.chmodSync(secretsFile, 0o600);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`cannot parse ${secretsFile}: ${err.message}`);
  }
}

const BCRYPT_HASH = /^\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}$/;
const adminUser = process.env.IOTB_ADMIN_USER || 'admin';
const secrets = readSecrets();
const generated = {};

// Admin password: a bcrypt hash from the environment, or one generated once and printed once
// (the Jenkins/Grafana first-run pattern). Only the hash is ever stored.
let adminHash = process.env.IOTB_ADMIN_PASSWORD_HASH || secrets.adminPasswordHash;
if (process.env.IOTB_ADMIN_PASSWORD_HASH && !BCRYPT_HASH.test(adminHash)) {
  throw new Error(
    'IOTB_ADMIN_PASSWORD_HASH is not a bcrypt hash: create one with ' +
      "`node -e \"console.log(require('bcryptjs').hashSync(process.argv[1], 12))\" '<password>'`",
  );
}
let password;
if (!adminHash) {
  const bcrypt = require('bcryptjs');
  password = crypto.randomBytes(18).toString('base64url');
  adminHash = bcrypt.hashSync(password, 12);
  generated.adminPasswordHash = adminHash;
}

// Key that encrypts flows_cred.json: from the environment, else generated once and kept 0600.
let credentialSecret = process.env.IOTB_CREDENTIAL_SECRET || secrets.credentialSecret;
if (!credentialSecret) {
  credentialSecret = crypto.randomBytes(32).toString('hex');
  generated.credentialSecret = credentialSecret;
}

// Stored before the password is shown: a password printed but never stored would lock the operator out.
if (Object.keys(generated).length > 0) {
  writeFileAtomicSync(secretsFile, JSON.stringify({ ...secrets, ...generated }, null, 2), 0o600);
}
if (password) {
  process.stdout.write(
    [
      '',
      '*************************************************************',
      ' node-red-contrib-iot-backend: first start',
      ` Editor user: ${adminUser}`,
      ` Editor password: ${password}`,
      ' This password is shown once. Only its bcrypt hash is stored in',
      ` ${secretsFile}`,
      '*************************************************************',
      '',
    ].join('\n'),
  );
}

// CORS of the device/operator API: none unless IOTB_API_CORS_ORIGINS names the origins (comma-separated) that
// may call it from a browser. The editor's admin API keeps Node-RED's own CORS; the two share no setting.
function apiCors(list) {
  const origins = list
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  if (origins.length === 0) return undefined;
  for (const o of origins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) {
      throw new Error(
        `IOTB_API_CORS_ORIGINS: "${o}" is not an origin such as https://ops.example.com (scheme and host, no path)`,
      );
    }
  }
  return {
    origin: origins.includes('*') ? '*' : origins,
    methods: 'GET,POST,PUT,PATCH,DELETE',
    allowedHeaders: ['Authorization', 'Content-Type'],
    maxAge: 600,
  };
}
const httpNodeCors = apiCors(process.env.IOTB_API_CORS_ORIGINS || '');

module.exports = {
  userDir,
  nodesDir: [__dirname],
  flowFile: 'flows.json',
  flowFilePretty: true,
  credentialSecret,

  uiHost: process.env.IOTB_HOST || '127.0.0.1',
  uiPort: Number(process.env.IOTB_PORT || process.env.PORT || 1880),

  adminAuth: {
    type: 'credentials',
    users: [{ username: adminUser, password: adminHash, permissions: '*' }],
  },

  // The HTTP API (/api/...) authenticates every call itself (operator API key or device token).
  httpNodeRoot: '/',
  ...(httpNodeCors ? { httpNodeCors } : {}),
  httpAdminRoot: '/',
  apiMaxLength: '5mb',

  editorTheme: {
    projects: { enabled: false },
    tours: false,
    codeEditor: { lib: 'monaco' },
  },
  // Installing nodes from the editor would run arbitrary code from the registry on the backend host.
  externalModules: {
    autoInstall: false,
    palette: { allowInstall: false, allowUpload: false },
    modules: { allowInstall: false },
  },
  functionExternalModules: false,
  diagnostics: { enabled: false, ui: false },
  runtimeState: { enabled: false, ui: false },
  telemetry: { enabled: false, updateNotification: false },

  logging: {
    console: { level: process.env.IOTB_LOG_LEVEL || 'info', metrics: false, audit: false },
  },
  exportGlobalContextKeys: false,
};
