/**
 * The HTTP API guard (nodes/lib/http/api-guard.ts) on a real node:http server: what reaches a route, what is
 * refused with which status, and the one-line-per-burst log.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { apiGuard, BurstLog, type ApiRefusal, type GuardedRequest } from '../../nodes/lib/http/api-guard';
import { answerOnce } from '../../nodes/lib/http/one-answer';
import type { Rejection } from '../../nodes/lib/rejection';
import { DEFAULT_LIMITS } from '../../nodes/lib/validate';
import { eventually } from '../support/servers';

describe('API guard', () => {
  let server: Server;
  let port: number;
  const refusals: ApiRefusal[] = [];
  const LIMIT = 1000;

  before(async () => {
    const guard = apiGuard({
      maxBodyBytes: LIMIT,
      limits: { ...DEFAULT_LIMITS, maxBytes: LIMIT },
      rawBody: (method, path) => method === 'POST' && path === '/raw',
      streamedBody: (method, path) => method === 'POST' && path === '/stream',
      onRefused: (r) => refusals.push(r),
    });
    // The route: echoes what it was handed.
    server = createServer((req: GuardedRequest, res) => {
      guard(req, res, () => {
        const body = Buffer.isBuffer(req.body)
          ? { raw: req.body.toString('utf8') }
          : { parsed: req.body ?? null };
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => {
    server.close();
  });

  /** One request; `chunks` are written one by one without a Content-Length (chunked encoding). */
  function send(
    path: string,
    opts: { body?: string; chunks?: string[]; type?: string },
  ): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (opts.type) headers['content-type'] = opts.type;
      if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body));
      const req = request(
        { host: '127.0.0.1', port, path, method: 'POST', headers, timeout: 5000 },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        },
      );
      req.on('timeout', () => req.destroy(new Error('not answered in time')));
      req.on('error', reject);
      if (opts.body !== undefined) req.end(opts.body);
      else {
        for (const c of opts.chunks ?? []) req.write(c);
        req.end();
      }
    });
  }

  it('hands a route the parsed object, or the raw bytes on a raw route (also as text/plain)', async () => {
    assert.deepEqual(await send('/x', { body: '{"a": [1, {"b": 2}]}', type: 'application/json' }), {
      status: 200,
      body: { parsed: { a: [1, { b: 2 }] } },
    });
    assert.deepEqual(await send('/raw', { body: '{"a":1e400}', type: 'text/plain; charset=utf-8' }), {
      status: 200,
      body: { raw: '{"a":1e400}' },
    });
    assert.deepEqual(await send('/x', { chunks: ['{"a"', ': 1}'], type: 'application/vnd.x+json' }), {
      status: 200,
      body: { parsed: { a: 1 } },
    });
    assert.deepEqual(
      await send('/x', {}),
      { status: 200, body: { parsed: null } },
      'no body: nothing to judge',
    );
    const image = 'x'.repeat(2 * LIMIT);
    assert.deepEqual(
      await send('/stream', { body: image, type: 'application/octet-stream' }),
      { status: 200, body: { parsed: null } },
      'a streamed route reads its own body: no type or size check, nothing read',
    );
    assert.equal((await send('/x', { body: image, type: 'application/octet-stream' })).status, 415);
  });

  it('refuses with the status and code of each problem', async () => {
    const cases: [Parameters<typeof send>[1], number, string][] = [
      [{ body: '{"a":', type: 'application/json' }, 400, 'PARSE'],
      [{ body: '{"a": NaN}', type: 'application/json' }, 400, 'PARSE'],
      [{ body: '{"a": 1e400}', type: 'application/json' }, 400, 'NUMBER'],
      [{ body: '[1]', type: 'application/json' }, 400, 'NOT_OBJECT'],
      [{ body: '{"__proto__": {"x": 1}}', type: 'application/json' }, 400, 'FORBIDDEN_KEY'],
      [{ body: `{"a": ${'['.repeat(400)}${']'.repeat(400)}}`, type: 'application/json' }, 400, 'TOO_DEEP'],
      [{ body: '{"a": 1}' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [{ body: 'a=1', type: 'application/x-www-form-urlencoded' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [{ body: '{"a": 1}', type: 'text/plain' }, 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [{ body: `{"a": "${'x'.repeat(LIMIT)}"}`, type: 'application/json' }, 413, 'TOO_LARGE'],
      [{ chunks: ['{"a": "', 'x'.repeat(LIMIT), '"}'], type: 'application/json' }, 413, 'TOO_LARGE'],
    ];
    refusals.length = 0;
    for (const [opts, status, code] of cases) {
      const res = await send('/x', opts);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.equal(res.body.code, code);
      assert.equal(typeof res.body.reason, 'string');
    }
    assert.deepEqual(
      refusals.map((r) => r.code),
      cases.map(([, , code]) => code),
      'each refusal reported once',
    );
  });

  it('logs the first refusal of a burst at once and the rest as one line when the interval ends', async () => {
    const lines: string[] = [];
    const log = new BurstLog((l) => lines.push(l), 'HTTP API requests refused', 100);
    log.note('PARSE', 'POST /api/a: 400 PARSE (bad)');
    assert.deepEqual(lines, ['HTTP API requests refused: POST /api/a: 400 PARSE (bad)']);
    for (let i = 0; i < 500; i++) log.note(i % 2 ? 'PARSE' : 'TOO_LARGE', `request ${i}`);
    await eventually('the summary line', () => (lines.length === 2 ? true : undefined));
    assert.equal(lines[1], '500 HTTP API requests refused (TOO_LARGE 250, PARSE 250); last: request 499');
    log.close();
  });
});

describe('answerOnce: one HTTP request, one answer', () => {
  const res = { answered: 'once' };
  const refusal = (index: number) => ({
    res,
    rejection: { stage: 'validate' as const, code: 'SCHEMA', reason: 'r', details: { index } },
  });

  it('leaves res on the first refusal only, with the counts; the accepted readings lose it', () => {
    const batch = { res, payload: [{ a: 1 }, { a: 2 }] };
    const refused = [refusal(1), refusal(3), refusal(4)];
    answerOnce(batch, [batch], refused, 2);
    assert.equal('res' in batch, false);
    assert.equal(refused[0].res, res);
    assert.deepEqual(refused[0].rejection.details, { index: 1, refused: 3, accepted: 2 });
    assert.deepEqual(
      refused.slice(1).map((m) => 'res' in m),
      [false, false],
    );
  });

  it('changes nothing without a request or without a refusal', () => {
    const ok = { res, payload: [] };
    answerOnce(ok, [ok], [], 2);
    assert.equal(ok.res, res);
    const mqtt = { payload: [] };
    const refused: { rejection: Rejection }[] = [
      { rejection: { stage: 'validate', code: 'SCHEMA', reason: 'r' } },
    ];
    answerOnce(mqtt, [mqtt], refused, 0);
    assert.equal('res' in refused[0], false);
    assert.equal(refused[0].rejection.details, undefined);
  });
});
