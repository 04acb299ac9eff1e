import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { FirmwareOffer } from './campaign';
import { verifyManifest } from './signing';

/** How the reference device's simulated install ends; 'fail' and 'hang' exist to test campaigns. */
export type InstallBehaviour = 'normal' | 'fail' | 'hang';

/** What the device reports in `reported.firmware`. */
export interface FirmwareReport {
  version?: string;
  state: 'idle' | 'downloading' | 'installing' | 'failed';
  campaign?: string;
  /** The version being installed. */
  target?: string;
  /** Downloaded share, 0-100. */
  progress?: number;
  error?: string;
}

export interface FirmwareUpdaterOptions {
  /** Resolves a relative offer URL (e.g. `/api/firmware/...`): the backend's HTTP base, `http://host:1880`. */
  baseUrl: string;
  /** The device's token, sent as `Authorization: Bearer`. */
  token: string;
  /** The device's type: part of what the signature covers. */
  deviceType: string;
  /** The backend's firmware signing key (PEM), built into the device firmware. */
  publicKey: string;
  /** The version running now. */
  version: string;
  /** Sends `reported.firmware` (through the twin). */
  report: (firmware: FirmwareReport) => Promise<void> | void;
  behaviour?: InstallBehaviour;
  /** Download attempts (a dropped connection resumes with Range); default 8. */
  attempts?: number;
  /** Simulated install time, ms; default 0. */
  installMs?: number;
}

/** What a FirmwareUpdater emits, for tests. */
export interface FirmwareUpdaterEvents {
  /** The whole image is in memory, after `requests` HTTP requests (more than one: resumed with Range). */
  downloaded: [download: { bytes: number; requests: number }];
  /** The image was not installed: size, hash or signature is wrong. */
  refused: [reason: string];
}

/**
 * The firmware side of the reference device. Given `desired.firmware`, it downloads the image (resuming with
 * `Range` + `If-Range` after a dropped connection, waiting out 429/503), checks its size and SHA-256 and the
 * Ed25519 signature over type, version, size and the hash it computed itself, then "installs" it (simulated:
 * reports the new version) and reports each step in `reported.firmware`. An offer for the running version is
 * answered with the version; an offer it is already working on is not started twice. Events in
 * `FirmwareUpdaterEvents`.
 */
export class FirmwareUpdater extends EventEmitter<FirmwareUpdaterEvents> {
  version: string;
  behaviour: InstallBehaviour;
  private working: string | undefined;
  private closed = false;

  constructor(private readonly opts: FirmwareUpdaterOptions) {
    super();
    this.version = opts.version;
    this.behaviour = opts.behaviour ?? 'normal';
  }

  close(): void {
    this.closed = true;
  }

  /** Acts on a desired firmware document; resolves when this offer is done with (installed, refused, failed). */
  async offer(offer: unknown): Promise<void> {
    if (!isOffer(offer)) return; // no offer, or one withdrawn (null)
    if (offer.version === this.version) {
      await this.report({ version: this.version, state: 'idle', campaign: offer.campaign });
      return;
    }
    const job = `${offer.campaign}\n${offer.version}`;
    if (this.working === job) return;
    this.working = job;
    const base = { campaign: offer.campaign, target: offer.version };
    try {
      await this.report({ ...base, state: 'downloading', progress: 0 });
      const image = await this.download(offer);
      const problem = this.check(offer, image);
      if (problem) {
        this.emit('refused', problem);
        await this.report({ ...base, state: 'failed', error: problem });
        return;
      }
      await this.report({ ...base, state: 'installing', progress: 100 });
      if (this.behaviour === 'hang') return;
      if (this.opts.installMs) await new Promise((r) => setTimeout(r, this.opts.installMs));
      if (this.closed) return;
      if (this.behaviour === 'fail') {
        await this.report({ ...base, state: 'failed', error: 'simulated install failure' });
        return;
      }
      this.version = offer.version;
      await this.report({ version: this.version, state: 'idle', campaign: offer.campaign });
    } catch (err) {
      // Only the download can throw here (reports retry until they are through): the install failed.
      await this.report({ ...base, state: 'failed', error: (err as Error).message.slice(0, 300) });
    } finally {
      if (this.working === job) this.working = undefined;
    }
  }

  /**
   * Sends a report, again and again while the device is offline (e.g. the backend restarts): a lost "installed"
   * would leave the campaign waiting for a timeout, and a send error is no reason to fail an install.
   */
  private async report(r: FirmwareReport): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.opts.report(r);
        return;
      } catch (err) {
        if (this.closed || attempt >= 60) throw err;
        await pause(attempt);
      }
    }
  }

  /** Why the image must not be installed, or undefined when size, hash and signature are right. */
  private check(offer: FirmwareOffer, image: Buffer): string | undefined {
    if (image.length !== offer.size) return `size ${image.length} is not the offered ${offer.size}`;
    const sha256 = createHash('sha256').update(image).digest('hex');
    if (sha256 !== offer.sha256) return 'SHA-256 of the image does not match the offer';
    const fields = { type: this.opts.deviceType, version: offer.version, size: image.length, sha256 };
    if (!verifyManifest(this.opts.publicKey, fields, offer.signature))
      return 'the signature does not verify with the firmware signing key';
    return undefined;
  }

  private async download(offer: FirmwareOffer): Promise<Buffer> {
    const url = new URL(offer.url, this.opts.baseUrl);
    const parts: Buffer[] = [];
    let have = 0;
    let etag: string | undefined;
    let requests = 0;
    let lastError = 'no attempt';
    for (let attempt = 0; attempt < (this.opts.attempts ?? 8); attempt++) {
      if (this.closed) throw new Error('device stopped');
      const headers: Record<string, string> = { authorization: `Bearer ${this.opts.token}` };
      if (have > 0 && etag) Object.assign(headers, { range: `bytes=${have}-`, 'if-range': etag });
      requests++;
      let res: Response;
      try {
        res = await fetch(url, { headers });
      } catch (err) {
        lastError = (err as Error).message;
        await pause(attempt);
        continue;
      }
      if (res.status === 429 || res.status === 503) {
        await res.body?.cancel();
        await new Promise((r) =>
          setTimeout(r, 1000 * Math.min(10, Number(res.headers.get('retry-after')) || 1)),
        );
        continue;
      }
      if (res.status !== 200 && res.status !== 206) {
        const text = await res.text().catch(() => '');
        throw new Error(`download refused: HTTP ${res.status} ${text.slice(0, 200)}`);
      }
      if (res.status === 200) {
        parts.length = 0; // the whole image again (the server did not resume)
        have = 0;
      }
      etag = res.headers.get('etag') ?? undefined;
      try {
        for await (const chunk of chunksOf(res.body)) {
          const b = Buffer.from(chunk);
          parts.push(b);
          have += b.length;
          if (have > offer.size) throw new Error('the image is larger than offered');
        }
      } catch (err) {
        if (have > offer.size) throw err;
        lastError = (err as Error).message; // dropped mid-body: resume from `have`
        await pause(attempt);
        continue;
      }
      if (have < offer.size) {
        lastError = `connection ended after ${have} of ${offer.size} bytes`;
        await pause(attempt);
        continue;
      }
      this.emit('downloaded', { bytes: have, requests });
      return Buffer.concat(parts, have);
    }
    throw new Error(`download failed after ${requests} requests: ${lastError}`);
  }
}

function isOffer(v: unknown): v is FirmwareOffer {
  const o = v as Partial<FirmwareOffer> | null | undefined;
  return (
    typeof o === 'object' &&
    o !== null &&
    typeof o.version === 'string' &&
    typeof o.url === 'string' &&
    typeof o.sha256 === 'string' &&
    typeof o.signature === 'string' &&
    typeof o.size === 'number' &&
    typeof o.campaign === 'string'
  );
}

/** The chunks of a fetch body; no body reads as an empty one. Leaving the loop early cancels the download. */
async function* chunksOf(body: ReadableStream<Uint8Array> | null): AsyncGenerator<Uint8Array> {
  if (!body) return;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => undefined); // settled already when the body ended or failed
  }
}

function pause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
}

/** The part of the reference device (device-client.ts) the updater plugs into. */
export interface TwinDevice {
  onDesired(key: string, handler: (value: unknown) => unknown): void;
  reportTwin(patch: Record<string, unknown>): Promise<void>;
  on(event: 'connect', listener: () => void): unknown;
}

/**
 * Gives a reference device firmware updates: `desired.firmware` goes to a FirmwareUpdater, whose reports go to
 * `reported.firmware`; on every connect the device reports the version it runs.
 */
export function attachFirmwareUpdater(
  device: TwinDevice,
  opts: Omit<FirmwareUpdaterOptions, 'report'>,
  onError: (err: unknown) => void = () => undefined,
): FirmwareUpdater {
  const updater = new FirmwareUpdater({ ...opts, report: (firmware) => device.reportTwin({ firmware }) });
  device.onDesired('firmware', (value) => {
    updater.offer(value).catch(onError);
    return undefined; // the updater reports as it goes
  });
  device.on('connect', () => {
    device.reportTwin({ firmware: { version: updater.version, state: 'idle' } }).catch(onError);
  });
  return updater;
}
