import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { RateLimiter } from '../broker/limits';
import type { Artifact } from './artifact-store';
import { FirmwareError } from './errors';

/** A byte range, both ends inclusive, as in `Content-Range`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one range of a `Range: bytes=...` header that the server answers, `undefined` for the whole file (no
 * header, another unit, or several ranges: RFC 9110 lets a server ignore Range), or `'unsatisfiable'` (416).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): ByteRange | undefined | 'unsatisfiable' {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]); // the last n bytes
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

export function etagOf(a: Pick<Artifact, 'sha256'>): string {
  return `"${a.sha256}"`;
}

export interface DownloadLimits {
  /** Downloads served at once over all devices; more get 503 with Retry-After. */
  maxConcurrent: number;
  /** Download requests per device per second (burst twice that); 0 = unlimited. */
  ratePerDeviceS: number;
  now?: () => number;
}

/**
 * Serves artifact files to devices over HTTP/1.1: `ETag` = the image's SHA-256, `If-None-Match` (304),
 * single `Range` requests (206; `If-Range` with the ETag) so a dropped download resumes where it stopped, and
 * two limits: downloads at once (the backend's disk and uplink) and requests per device (a looping device).
 */
export class DownloadServer {
  private active = 0;
  private readonly rate: RateLimiter;

  constructor(private readonly limits: DownloadLimits) {
    this.rate = new RateLimiter(limits.ratePerDeviceS, 2 * limits.ratePerDeviceS, 100_000, limits.now);
  }

  get activeDownloads(): number {
    return this.active;
  }

  /**
   * Checks that `deviceId` may fetch now and answers with `file`'s bytes. Refusals are thrown as FirmwareError
   * before anything is written; a connection that drops mid-body only ends that download.
   */
  serve(req: IncomingMessage, res: ServerResponse, artifact: Artifact, file: string, deviceId: string): void {
    if (!this.rate.take(deviceId)) {
      res.setHeader('retry-after', String(Math.max(1, Math.ceil(this.rate.waitMs(deviceId) / 1000))));
      throw new FirmwareError('RATE_LIMITED', `device ${deviceId} asks for downloads too often`);
    }
    const etag = etagOf(artifact);
    res.setHeader('etag', etag);
    res.setHeader('accept-ranges', 'bytes');
    res.setHeader('cache-control', 'private, no-transform');
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')) {
      res.statusCode = 304;
      res.end();
      return;
    }
    const ifRange = req.headers['if-range'];
    const range =
      ifRange === undefined || ifRange === etag ? parseRange(req.headers.range, artifact.size) : undefined;
    if (range === 'unsatisfiable') {
      res.statusCode = 416;
      res.setHeader('content-range', `bytes */${artifact.size}`);
      res.end();
      return;
    }
    if (this.active >= this.limits.maxConcurrent) {
      res.setHeader('retry-after', '5');
      throw new FirmwareError(
        'BUSY',
        `${this.limits.maxConcurrent} downloads are under way; try again shortly`,
      );
    }
    this.active++;
    let released = false;
    const release = (): void => {
      if (!released) {
        released = true;
        this.active--;
      }
    };
    res.once('close', release);
    const { start, end } = range ?? { start: 0, end: artifact.size - 1 };
    res.statusCode = range ? 206 : 200;
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(end - start + 1));
    if (range) res.setHeader('content-range', `bytes ${start}-${end}/${artifact.size}`);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    pipeline(createReadStream(file, { start, end, highWaterMark: 256 * 1024 }), res, () => release());
  }
}
