// Node-RED settings for `npm start`: this package loaded from the checkout, secure by default.
// Every environment variable is documented in README.md ("Configuration").
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const userDir = path.resolve(process.env.IOTB_USER_DIR || path.join(__dirname, '.node-red'));
fs.mkdirSync(userDir, { recursive: true, mode: 0o700 });

// Secrets generated on first start live here, readable by the owner only.
const secretsFile = path.join(userDir, '.iotb-secrets.json');

function readSecrets() {
  try {
    return JSON.parse(fs.readFileSync(secretsFile, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return {};
    throw new Error(`cannot read ${secretsFile}: ${err.message}`);
  }
}

function writeSecrets(secrets) {
  const tmp = `${secretsFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  fs.renameSync(tmp, secretsFile);
}

const secrets = readSecrets();
let secretsChanged = false;

// Admin password: a bcrypt hash from the environment, or one generated once and printed once
// (the Jenkins/Grafana first-run pattern). Only the hash is ever stored.
let adminHash = process.env.IOTB_ADMIN_PASSWORD_HASH || secrets.adminPasswordHash;
if (!adminHash) {
  const bcrypt = require('bcryptjs');
  const password = crypto.randomBytes(18).toString('base64url');
  adminHash = bcrypt.hashSync(password, 12);
  secrets.adminPasswordHash = adminHash;
  secretsChanged = true;
  process.stdout.write(
    [
      '',
      '*************************************************************',
      ' node-red-contrib-iot-backend: first start',
      ` Editor user: ${process.env.IOTB_ADMIN_USER || 'admin'}`,
      ` Editor password: ${password}`,
      ' This password is shown once. Only its bcrypt hash is stored in',
      ` ${secretsFile}`,
      '*************************************************************',
      '',
    ].join('\n'),
  );
}

// Key that encrypts flows_cred.json: from the environment, else generated once and kept 0600.
let credentialSecret = process.env.IOTB_CREDENTIAL_SECRET || secrets.credentialSecret;
if (!credentialSecret) {
  credentialSecret = crypto.randomBytes(32).toString('hex');
  secrets.credentialSecret = credentialSecret;
  secretsChanged = true;
}
if (secretsChanged) writeSecrets(secrets);

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
    users: [{ username: process.env.IOTB_ADMIN_USER || 'admin', password: adminHash, permissions: '*' }],
  },

  // The HTTP API (/api/...) authenticates every call itself (operator API key or device token).
  httpNodeRoot: '/',
  httpAdminRoot: '/',
  apiMaxLength: '5mb',

  editorTheme: {
    projects: { enabled: false },
    // Installing nodes from the editor would run arbitrary code from the registry on the backend host.
    palette: { upload: false },
    tours: false,
    codeEditor: { lib: 'monaco' },
  },
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
