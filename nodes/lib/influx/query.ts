/**
 * Queries for iotb-influx-query. Values from the message travel as bound parameters, never inside the query
 * text: InfluxQL `$name` with the `params` form field (1.x, 2.x /query, 3.x), SQL `$name` with `params` (3.x),
 * and for Flux (2.x) a `params` record built by the client library's Flux value encoder, prepended to the
 * query (the same `params.name` form that InfluxDB Cloud uses for parameterized Flux).
 */
import { InfluxDB, toFluxValue, type QueryApi } from '@influxdata/influxdb-client';
import { influxErrorText, type InfluxConnection } from './connection';

/** One Flux client per connection, made on its first Flux query (InfluxConnection itself speaks plain HTTP). */
const fluxApis = new WeakMap<InfluxConnection, QueryApi>();

function fluxApi(conn: InfluxConnection): QueryApi {
  let api = fluxApis.get(conn);
  if (!api) {
    const o = conn.opts;
    const client = new InfluxDB({
      url: conn.base.href,
      token: o.token,
      timeout: o.timeoutMs ?? 10_000,
      transportOptions: o.tls
        ? {
            ca: o.tls.ca,
            cert: o.tls.cert,
            key: o.tls.key,
            rejectUnauthorized: o.tls.rejectUnauthorized ?? true,
          }
        : undefined,
    });
    api = client.getQueryApi(o.org ?? '');
    fluxApis.set(conn, api);
  }
  return api;
}

export type QueryLanguage = 'influxql' | 'flux' | 'sql';
export type Row = Record<string, unknown>;

/** The shape chart nodes (e.g. the dashboard's ui-chart) take: one series per numeric column and tag set. */
export interface ChartData {
  series: string[];
  data: { x: number; y: number }[][];
  labels: string[];
}

export interface QueryRequest {
  language: QueryLanguage;
  query: string;
  params?: Record<string, unknown>;
}

export class QueryError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'QueryError';
  }
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function checkParams(params: Record<string, unknown> | undefined): Record<string, unknown> {
  const p = params ?? {};
  for (const [k, v] of Object.entries(p)) {
    if (!PARAM_NAME.test(k)) throw new QueryError(`parameter name ${JSON.stringify(k)} is not an identifier`);
    if (v !== null && !['string', 'number', 'boolean'].includes(typeof v))
      throw new QueryError(`parameter ${k} must be a string, number, boolean or null`);
  }
  return p;
}

export async function runQuery(conn: InfluxConnection, req: QueryRequest): Promise<Row[]> {
  const params = checkParams(req.params);
  const o = conn.opts;
  const auth = conn.authHeaders();
  switch (req.language) {
    case 'influxql': {
      assertReadOnlyInfluxQL(req.query);
      const q = new URLSearchParams({ q: req.query, epoch: 'ms' });
      const db = o.flavour === '2' ? o.bucket : o.database;
      if (db) q.set('db', db);
      if (o.flavour === '1' && o.retentionPolicy) q.set('rp', o.retentionPolicy);
      if (Object.keys(params).length) q.set('params', JSON.stringify(params));
      if (o.flavour === '3') q.set('format', 'json');
      const res = await conn.request(
        'GET',
        `${o.flavour === '3' ? 'api/v3/query_influxql' : 'query'}?${q}`,
        undefined,
        auth,
      );
      if (res.status !== 200)
        throw new QueryError(`InfluxQL query failed (${res.status}): ${influxErrorText(res)}`, res.status);
      return influxqlRows(JSON.parse(res.body));
    }
    case 'sql': {
      if (o.flavour !== '3') throw new QueryError('SQL queries need the InfluxDB 3.x API');
      const res = await conn.request(
        'POST',
        'api/v3/query_sql',
        JSON.stringify({ db: o.database, q: req.query, params, format: 'json' }),
        { ...auth, 'content-type': 'application/json' },
      );
      if (res.status !== 200)
        throw new QueryError(`SQL query failed (${res.status}): ${influxErrorText(res)}`, res.status);
      const rows = JSON.parse(res.body) as unknown;
      if (!Array.isArray(rows)) throw new QueryError('SQL query: the answer is not a JSON array of rows');
      return rows as Row[];
    }
    case 'flux': {
      if (o.flavour !== '2') throw new QueryError('Flux queries need the InfluxDB 2.x API');
      const names = Object.keys(params);
      const prelude = names.length
        ? `params = {${names.map((k) => `${k}: ${toFluxValue(params[k])}`).join(', ')}}\n`
        : '';
      try {
        return await fluxApi(conn).collectRows<Row>(prelude + req.query);
      } catch (err) {
        const e = err as { statusCode?: number; message: string };
        throw new QueryError(`Flux query failed: ${e.message}`, e.statusCode);
      }
    }
  }
}

const READ_STATEMENT = /^(SELECT|SHOW|EXPLAIN)\b/i;

/**
 * This node only reads: every InfluxQL statement must be SELECT, SHOW or EXPLAIN and none may use INTO.
 * (InfluxDB 1.x runs even DROP DATABASE sent over GET, with just a deprecation warning.) Words inside
 * 'strings', "identifiers" and comments do not count.
 */
function assertReadOnlyInfluxQL(query: string): void {
  const statements: string[] = [];
  let cur = '';
  for (let i = 0; i < query.length; i++) {
    const ch = query[i];
    if (ch === "'" || ch === '"') {
      let j = i + 1;
      while (j < query.length && query[j] !== ch) j += query[j] === '\\' ? 2 : 1;
      cur += ' _ ';
      i = j;
    } else if (ch === '-' && query[i + 1] === '-') {
      while (i < query.length && query[i] !== '\n') i++;
      cur += ' ';
    } else if (ch === '/' && query[i + 1] === '*') {
      const end = query.indexOf('*/', i + 2);
      i = end < 0 ? query.length : end + 1;
      cur += ' ';
    } else if (ch === ';') {
      statements.push(cur);
      cur = '';
    } else cur += ch;
  }
  statements.push(cur);
  for (const st of statements.map((x) => x.trim()).filter(Boolean)) {
    if (!READ_STATEMENT.test(st) || /\bINTO\b/i.test(st))
      throw new QueryError(
        `only reading queries (SELECT, SHOW, EXPLAIN; no INTO) are allowed: ${st.slice(0, 60)}`,
      );
  }
}

interface InfluxQLResponse {
  results?: {
    error?: string;
    series?: { name: string; tags?: Record<string, string>; columns: string[]; values?: unknown[][] }[];
  }[];
  error?: string;
}

/** 1.x `{results:[{series:[{name,tags,columns,values}]}]}` as row objects (tags and `measurement` included). */
function influxqlRows(body: unknown): Row[] {
  if (Array.isArray(body)) return body as Row[]; // 3.x answers InfluxQL as rows already
  const r = body as InfluxQLResponse;
  if (r.error) throw new QueryError(r.error);
  const rows: Row[] = [];
  for (const result of r.results ?? []) {
    if (result.error) throw new QueryError(result.error);
    for (const s of result.series ?? []) {
      for (const values of s.values ?? []) {
        const row: Row = { measurement: s.name, ...s.tags };
        s.columns.forEach((c, i) => (row[c] = values[i]));
        rows.push(row);
      }
    }
  }
  return rows;
}

function timeMs(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

const TIME_COLUMNS = new Set(['time', '_time']);
const NOT_VALUES = new Set(['measurement', '_measurement', 'result', 'table', '_start', '_stop', '_field']);

/**
 * Rows as chart series: every numeric column becomes a series per tag set (string columns), named
 * "column" or "column tag=value,...". Flux rows (`_field`/`_value`) are named by their field.
 */
export function toChart(rows: Row[]): ChartData[] {
  const byName = new Map<string, { x: number; y: number }[]>();
  for (const row of rows) {
    const x = timeMs(row.time ?? row._time);
    if (x === undefined) continue;
    const tagText = Object.entries(row)
      .filter(([k, v]) => typeof v === 'string' && !TIME_COLUMNS.has(k) && !NOT_VALUES.has(k))
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(',');
    for (const [k, v] of Object.entries(row)) {
      if (typeof v !== 'number' || TIME_COLUMNS.has(k) || NOT_VALUES.has(k)) continue;
      const col = k === '_value' && typeof row._field === 'string' ? row._field : k;
      const name = tagText ? `${col} ${tagText}` : col;
      let points = byName.get(name);
      if (!points) byName.set(name, (points = []));
      points.push({ x, y: v });
    }
  }
  return [{ series: [...byName.keys()], data: [...byName.values()], labels: [''] }];
}
