/**
 * NOT InfluxDB: a local HTTP server that answers the InfluxDB 2.x and 3.x write endpoints the way their docs
 * describe, for what no installable server here shows (2.x token errors and bucket lookup, the 3.x
 * `/api/v3/write_lp` endpoint, 429/503 with Retry-After, 413). Tests queue scripted answers with
 * `respond()`; otherwise it authenticates the token and stores the lines it is sent, keeping a field's first
 * type and refusing lines that conflict (partial write: 2.x 422, 3.x 400 naming the lines).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface ScriptedAnswer {
  status: number;
  headers?: Record<string, string>;
  body?: string;
}

export interface DocServerRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface InfluxDocServer {
  url: string;
  /** Every request in arrival order. */
  requests: DocServerRequest[];
  /** Lines stored by successful writes, in order. */
  stored: string[];
  /** Token the server accepts (2.x `Token x`, 3.x `Bearer x`). */
  token: string;
  org: string;
  bucket: string;
  database: string;
  /** Bodies larger than this are answered 413, as a proxy or InfluxDB's max-body-size does. */
  maxBodyBytes: number;
  /** Answers to give to the next write requests, before normal handling. */
  respond(...answers: ScriptedAnswer[]): void;
  close(): Promise<void>;
}

export async function startInfluxDocServer(
  opts: Partial<Pick<InfluxDocServer, 'token' | 'org' | 'bucket' | 'database'>> = {},
): Promise<InfluxDocServer> {
  const queue: ScriptedAnswer[] = [];
  const state = {
    token: opts.token ?? 'doc-token',
    org: opts.org ?? 'iot',
    bucket: opts.bucket ?? 'telemetry',
    database: opts.database ?? 'iot',
    maxBodyBytes: Number.MAX_SAFE_INTEGER,
  };
  const requests: DocServerRequest[] = [];
  const stored: string[] = [];
  /** measurement + field -> type, as InfluxDB keeps a schema: a later value of another type is refused. */
  const schema = new Map<string, string>();

  /** The field types of a simple line (no escaped spaces, commas or quotes in it). */
  function fieldTypes(line: string): { measurement: string; fields: [string, string][] } {
    const [series, fieldText] = line.split(' ');
    return {
      measurement: series.split(',')[0],
      fields: fieldText.split(',').map((f) => {
        const [k, v] = f.split('=');
        const type = v.startsWith('"')
          ? 'string'
          : v.endsWith('i')
            ? 'integer'
            : v === 'true' || v === 'false'
              ? 'boolean'
              : 'float';
        return [k, type];
      }),
    };
  }

  /** Stores the lines that fit the schema; answers as the 2.x (422) or 3.x (400) docs say for the others. */
  function store(body: string, v3: boolean): ScriptedAnswer {
    const refused: { original_line: string; line_number: number; error_message: string }[] = [];
    body
      .split('\n')
      .filter(Boolean)
      .forEach((line, i) => {
        const { measurement, fields } = fieldTypes(line);
        const conflict = fields.find(([k, t]) => (schema.get(`${measurement}.${k}`) ?? t) !== t);
        if (conflict) {
          const had = schema.get(`${measurement}.${conflict[0]}`);
          refused.push({
            original_line: line,
            line_number: i + 1,
            error_message: `invalid column type for column '${conflict[0]}', expected ${had}, got ${conflict[1]}`,
          });
          return;
        }
        for (const [k, t] of fields) schema.set(`${measurement}.${k}`, t);
        stored.push(line);
      });
    if (refused.length === 0) return { status: 204 };
    return v3
      ? json(400, { error: 'partial write of line protocol occurred', data: refused })
      : json(422, {
          code: 'unprocessable entity',
          message: `failure writing points to database: partial write: ${refused[0].error_message} dropped=${refused.length}`,
        });
  }

  const json = (status: number, body: unknown): ScriptedAnswer => ({
    status,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

  function answer(req: DocServerRequest): ScriptedAnswer {
    const url = new URL(req.path, 'http://x');
    const auth = req.headers.authorization ?? '';
    const isWrite = req.method === 'POST' && /\/(api\/v2\/write|api\/v3\/write_lp)$/.test(url.pathname);
    if (isWrite && queue.length > 0) return queue.shift()!;
    if (url.pathname === '/health')
      return json(200, { name: 'influxdb', status: 'pass', version: 'doc-server' });
    if (url.pathname.startsWith('/api/v2/')) {
      if (auth !== `Token ${state.token}`)
        return json(401, { code: 'unauthorized', message: 'unauthorized access' });
      if (url.pathname === '/api/v2/buckets') {
        if (url.searchParams.get('org') !== state.org)
          return json(404, {
            code: 'not found',
            message: `organization name "${url.searchParams.get('org')}" not found`,
          });
        const name = url.searchParams.get('name');
        return json(200, { buckets: name === state.bucket ? [{ name }] : [] });
      }
      if (url.pathname === '/api/v2/write') {
        if (url.searchParams.get('bucket') !== state.bucket)
          return json(404, {
            code: 'not found',
            message: `bucket "${url.searchParams.get('bucket')}" not found`,
          });
        if (Buffer.byteLength(req.body) > state.maxBodyBytes)
          return json(413, {
            code: 'request too large',
            message: 'unable to read data: points batch is too large',
          });
        return store(req.body, false);
      }
    }
    if (url.pathname.startsWith('/api/v3/')) {
      if (auth !== `Bearer ${state.token}`) return json(401, { error: 'the request was not authenticated' });
      if (url.pathname === '/api/v3/configure/database')
        return json(200, [{ 'iox::database': state.database }]);
      if (url.pathname === '/api/v3/write_lp') {
        if (url.searchParams.get('db') !== state.database)
          return json(404, { error: `database not found: ${url.searchParams.get('db')}` });
        if (Buffer.byteLength(req.body) > state.maxBodyBytes)
          return json(413, { error: 'request too large' });
        return store(req.body, true);
      }
    }
    return json(404, { error: 'not found' });
  }

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const r: DocServerRequest = {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers: req.headers,
        body: raw.toString('utf8'),
      };
      requests.push(r);
      const a = answer(r);
      res.writeHead(a.status, a.headers ?? {});
      res.end(a.body ?? '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  const doc = Object.assign(state, {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    stored,
    respond: (...answers: ScriptedAnswer[]) => void queue.push(...answers),
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  });
  return doc;
}
