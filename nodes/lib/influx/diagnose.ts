/**
 * "Test connection": says precisely what is wrong — unreachable, TLS, credentials refused, database or
 * bucket missing, wrong API flavour — or that writing will work.
 */
import { influxErrorText, InfluxConnection, NetworkError, type HttpResult } from './connection';

export interface Diagnosis {
  ok: boolean;
  /** One sentence for the editor dialog. */
  message: string;
  version?: string;
}

function authProblem(res: HttpResult): string | undefined {
  if (res.status === 401) return `InfluxDB refused the credentials (401): ${influxErrorText(res)}`;
  if (res.status === 403) return `the credentials lack permission (403): ${influxErrorText(res)}`;
  return undefined;
}

export async function diagnose(conn: InfluxConnection): Promise<Diagnosis> {
  const o = conn.opts;
  const auth = conn.authHeaders();
  try {
    const ping = await conn.request('GET', o.flavour === '1' ? 'ping' : 'health', undefined, auth);
    const version = ping.headers['x-influxdb-version'] as string | undefined;
    if (ping.status >= 500)
      return { ok: false, message: `InfluxDB answers ${ping.status}: ${influxErrorText(ping)}` };
    const fail = (message: string): Diagnosis => ({ ok: false, message, version });
    const pass = (message: string): Diagnosis => ({ ok: true, message, version });
    const wrongApi = (path: string, api: string): Diagnosis =>
      fail(`${conn.base.href} has no ${path}: is this an InfluxDB ${api} API?`);
    const problem = authProblem(ping);
    if (problem) return fail(problem);
    switch (o.flavour) {
      case '1': {
        if (!o.database) return fail('no database configured');
        const q = new URLSearchParams({ q: 'SHOW DATABASES' });
        const res = await conn.request('GET', `query?${q}`, undefined, auth);
        const p = authProblem(res);
        if (p) return fail(p);
        if (res.status === 404) return wrongApi('/query', '1.x');
        if (res.status !== 200) return fail(`SHOW DATABASES: ${influxErrorText(res)}`);
        const missing = missingDatabase(o.database, databaseNames(res.body));
        if (missing) return fail(missing);
        return pass(`connected to InfluxDB ${version ?? '1.x'}, database "${o.database}" exists`);
      }
      case '2': {
        if (!o.org || !o.bucket) return fail('organisation and bucket must be set');
        const q = new URLSearchParams({ org: o.org, name: o.bucket });
        const res = await conn.request('GET', `api/v2/buckets?${q}`, undefined, auth);
        const p = authProblem(res);
        if (p) return fail(p);
        if (res.status === 404 && /organization/i.test(res.body))
          return fail(`organisation "${o.org}" not found: ${influxErrorText(res)}`);
        if (res.status === 404) return wrongApi('/api/v2/buckets', '2.x');
        if (res.status !== 200) return fail(`listing buckets: ${influxErrorText(res)}`);
        const buckets = (JSON.parse(res.body) as { buckets?: { name: string }[] }).buckets ?? [];
        if (!buckets.some((b) => b.name === o.bucket))
          return fail(`bucket "${o.bucket}" does not exist in organisation "${o.org}"`);
        return pass(`connected to InfluxDB ${version ?? '2.x'}, bucket "${o.bucket}" exists`);
      }
      case '3': {
        if (!o.database) return fail('no database configured');
        const res = await conn.request('GET', 'api/v3/configure/database?format=json', undefined, auth);
        const p = authProblem(res);
        if (p) return fail(p);
        if (res.status === 404) return wrongApi('/api/v3', '3.x');
        if (res.status !== 200) return fail(`listing databases: ${influxErrorText(res)}`);
        const rows = JSON.parse(res.body) as Record<string, string | undefined>[];
        const names = rows.map((r) => r['iox::database'] ?? r.database ?? r.name ?? '');
        const missing = missingDatabase(o.database, names);
        if (missing) return fail(missing);
        return pass(`connected to InfluxDB ${version ?? '3.x'}, database "${o.database}" exists`);
      }
    }
  } catch (err) {
    if (err instanceof NetworkError)
      return { ok: false, message: `cannot reach ${conn.base.host}: ${err.message}` };
    return { ok: false, message: (err as Error).message };
  }
}

function missingDatabase(database: string, names: string[]): string | undefined {
  if (names.includes(database)) return undefined;
  return `database "${database}" does not exist (found: ${names.join(', ') || 'none'})`;
}

function databaseNames(body: string): string[] {
  const j = JSON.parse(body) as { results?: { series?: { values?: unknown[][] }[] }[] };
  return (j.results?.[0]?.series?.[0]?.values ?? []).map((v) => String(v[0]));
}
