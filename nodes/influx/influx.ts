import type { NodeAPI, NodeDef } from 'node-red';
import type { InfluxConfigNode, InfluxCredentials } from './types';
import { InfluxConnection, type InfluxConnectionOptions, type InfluxFlavour } from '../lib/influx/connection';
import { diagnose } from '../lib/influx/diagnose';
import { checkSetting, firstProblem, httpUrl, required } from '../lib/config-check';
import { credentialsOf, NodeGlue } from '../glue/glue';
import { numberSetting } from '../glue/settings';

interface InfluxConfigDef extends NodeDef {
  flavour: InfluxFlavour;
  url: string;
  database: string;
  retentionPolicy: string;
  org: string;
  bucket: string;
  timeoutS: number | string;
  gzip: boolean;
  rejectUnauthorized: boolean;
}

type ConfigFields = Partial<Omit<InfluxConfigDef, keyof NodeDef>>;

function connectionOptions(c: ConfigFields, creds: InfluxCredentials): InfluxConnectionOptions {
  return {
    flavour: c.flavour ?? '1',
    url: c.url ?? '',
    database: c.database,
    retentionPolicy: c.retentionPolicy,
    org: c.org,
    bucket: c.bucket,
    token: creds.token || undefined,
    username: creds.username || undefined,
    password: creds.password || undefined,
    timeoutMs: numberSetting(c.timeoutS, { fallback: 10, above: 0 }) * 1000,
    gzipMinBytes: c.gzip ? 1024 : 0,
    tls: {
      ca: creds.ca,
      cert: creds.cert,
      key: creds.key,
      rejectUnauthorized: c.rejectUnauthorized !== false,
    },
  };
}

/** The first setting that cannot work, described (the dialog's names), or undefined. */
function settingsProblem(c: ConfigFields): string | undefined {
  const flavour = c.flavour ?? '1';
  return firstProblem(
    checkSetting('URL', c.url, httpUrl),
    flavour === '2' ? checkSetting('Organisation', c.org, required) : undefined,
    flavour === '2'
      ? checkSetting('Bucket', c.bucket, required)
      : checkSetting('Database', c.database, required),
  );
}

/** iotb-influx: one InfluxDB server (API flavour, URL, TLS, credentials) shared by the write and query nodes. */
export = function register(RED: NodeAPI): void {
  function InfluxNode(this: InfluxConfigNode, config: InfluxConfigDef): void {
    RED.nodes.createNode(this, config);
    const glue = new NodeGlue(RED, this);
    // A setting that cannot work is said once here; the write and query nodes show it in their status.
    let problem = settingsProblem(config);
    let connection: InfluxConnection | undefined;
    try {
      if (!problem) connection = new InfluxConnection(connectionOptions(config, credentialsOf(this)));
    } catch (err) {
      problem = (err as Error).message;
    }
    if (!connection) {
      this.configProblem = problem;
      this.error(glue.t('error.invalid', { problem: problem ?? '' }));
      return;
    }
    this.connection = connection;
    glue.onClose(() => connection.close());
  }
  RED.nodes.registerType<InfluxConfigNode, InfluxConfigDef, unknown, InfluxCredentials>(
    'iotb-influx',
    InfluxNode,
    {
      credentials: {
        token: { type: 'password' },
        username: { type: 'text' },
        password: { type: 'password' },
        ca: { type: 'text' },
        cert: { type: 'text' },
        key: { type: 'password' },
      },
    },
  );

  // "Test connection" in the dialog: the editor sends the form; secrets it does not hold (shown as
  // __PWRD__) come from the deployed node's credentials.
  RED.httpAdmin.post('/iotb-influx/test', RED.auth.needsPermission('iotb-influx.write'), (req, res) => {
    const body = (req.body ?? {}) as ConfigFields & { id?: string; credentials?: InfluxCredentials };
    const stored = (body.id ? RED.nodes.getCredentials(body.id) : undefined) as InfluxCredentials | undefined;
    const creds: InfluxCredentials = {};
    for (const k of ['token', 'username', 'password', 'ca', 'cert', 'key'] as const) {
      const v = body.credentials?.[k];
      creds[k] = v === '__PWRD__' || v === undefined ? stored?.[k] : v;
    }
    let conn: InfluxConnection;
    try {
      conn = new InfluxConnection(connectionOptions(body, creds));
    } catch (err) {
      res.json({ ok: false, message: (err as Error).message });
      return;
    }
    diagnose(conn).then(
      (d) => {
        conn.close();
        res.json(d);
      },
      (err: unknown) => {
        conn.close();
        res.json({ ok: false, message: (err as Error).message });
      },
    );
  });
};
