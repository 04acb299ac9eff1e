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
    const version = (ping.headers['x-influxdb-version'] as string | undefined) ?? undefined;
    if (ping.status >= 500)
      return { ok: false, message: `InfluxDB answers ${ping.status}: ${influxErrorText(ping)}` };
    const problem = authProblem(ping);
    if (problem) return { ok: false, message: problem, version };
    switch (o.flavour) {
      case '1': {
        if (!o.database) return { ok: false, message: 'no database configured', version };
        const q = new URLSearchParams({ q: 'SHOW DATABASES' });
        const res = await conn.request('GET', `query?${q}`, undefined, auth);
        const p = authProblem(res);
        if (p) return { ok: false, message: p, version };
        if (res.status === 404)
          return {
            ok: false,
            message: `${conn.base.href} has no /query: is this an InfluxDB 1.x API?`,
            version,
          };
        if (res.status !== 200)
          return { ok: false, message: `SHOW DATABASES: ${influxErrorText(res)}`, version };
        const names = databaseNames(res.body);
        if (!names.includes(o.database))
          return {
            ok: false,
            message: `database "${o.database}" does not exist (found: ${names.join(', ') || 'none'})`,
            version,
          };
        return {
          ok: true,
          message: `connected to InfluxDB ${version ?? '1.x'}, database "${o.database}" exists`,
          version,
        };
      }
      case '2': {
        if (!o.org || !o.bucket)
          return { ok: false, message: 'organisation and bucket must be set', version };
        const q = new URLSearchParams({ org: o.org, name: o.bucket });
        const res = await conn.request('GET', `api/v2/buckets?${q}`, undefined, auth);
        const p = authProblem(res);
        if (p) return { ok: false, message: p, version };
        if (res.status === 404 && /organization/i.test(res.body))
          return {
            ok: false,
            message: `organisation "${o.org}" not found: ${influxErrorText(res)}`,
            version,
          };
        if (res.status === 404)
          return {
            ok: false,
            message: `${conn.base.href} has no /api/v2/buckets: is this an InfluxDB 2.x API?`,
          };
        if (res.status !== 200)
          return { ok: false, message: `listing buckets: ${influxErrorText(res)}`, version };
        const buckets = (JSON.parse(res.body) as { buckets?: { name: string }[] }).buckets ?? [];
        if (!buckets.some((b) => b.name === o.bucket))
          return {
            ok: false,
            message: `bucket "${o.bucket}" does not exist in organisation "${o.org}"`,
            version,
          };
        return {
          ok: true,
          message: `connected to InfluxDB ${version ?? '2.x'}, bucket "${o.bucket}" exists`,
          version,
        };
      }
      case '3': {
        if (!o.database) return { ok: false, message: 'no database configured', version };
        const res = await conn.request('GET', 'api/v3/configure/database?format=json', undefined, auth);
        const p = authProblem(res);
        if (p) return { ok: false, message: p, version };
        if (res.status === 404)
          return {
            ok: false,
            message: `${conn.base.href} has no /api/v3: is this an InfluxDB 3.x API?`,
            version,
          };
        if (res.status !== 200)
          return { ok: false, message: `listing databases: ${influxErrorText(res)}`, version };
        const rows = JSON.parse(res.body) as Record<string, string | undefined>[];
        const names = rows.map((r) => r['iox::database'] ?? r.database ?? r.name ?? '');
        if (!names.includes(o.database))
          return {
            ok: false,
            message: `database "${o.database}" does not exist (found: ${names.join(', ') || 'none'})`,
            version,
          };
        return {
          ok: true,
          message: `connected to InfluxDB ${version ?? '3.x'}, database "${o.database}" exists`,
          version,
        };
      }
    }
  } catch (err) {
    if (err instanceof NetworkError)
      return { ok: false, message: `cannot reach ${conn.base.host}: ${err.message}` };
    return { ok: false, message: (err as Error).message };
  }
}

function databaseNames(body: string): string[] {
  const j = JSON.parse(body) as { results?: { series?: { values?: unknown[][] }[] }[] };
  return (j.results?.[0]?.series?.[0]?.values ?? []).map((v) => String(v[0]));
}
