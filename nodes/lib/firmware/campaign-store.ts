import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { writeFileAtomicSync } from '../atomic-file';
import type { Campaign, CampaignDevice, CampaignHeader } from './campaign';

/**
 * Where campaigns are kept. `putDevices` with `durable` returns only once the lines are on disk: the engine
 * uses it for NOTIFIED before it tells the devices (the rule that keeps a restart from notifying twice).
 */
export interface CampaignStore {
  load(): Campaign[];
  putCampaign(header: CampaignHeader): void;
  putDevices(campaignId: string, devices: readonly CampaignDevice[], durable: boolean): void;
  close(): void;
}

type Line = { t: 'c'; c: CampaignHeader } | { t: 'd'; c: string; d: CampaignDevice[] };

/**
 * Campaigns as an append-only JSON-lines log: a campaign's header line on every status change, its device
 * records on every transition (the last record of a device wins). Each write reaches the OS before the call
 * returns, so kill -9 loses nothing; `fdatasync` runs for durable writes and otherwise every `syncIntervalMs`.
 * A torn last line (a crash mid-write) is skipped. Compacted from the live state at every start.
 */
export class FileCampaignStore implements CampaignStore {
  private fd: number | undefined;
  private dirty = false;
  private readonly syncTimer: NodeJS.Timeout;

  constructor(
    readonly file: string,
    syncIntervalMs = 200,
  ) {
    this.syncTimer = setInterval(() => this.sync(), syncIntervalMs);
    this.syncTimer.unref();
  }

  load(): Campaign[] {
    const campaigns = new Map<string, { header: CampaignHeader; devices: Map<string, CampaignDevice> }>();
    if (existsSync(this.file))
      for (const text of readFileSync(this.file, 'utf8').split('\n')) {
        if (!text) continue;
        let line: Line;
        try {
          line = JSON.parse(text) as Line;
        } catch {
          continue; // a torn write from a crash: the state before it is intact
        }
        if (line.t === 'c') {
          const known = campaigns.get(line.c.id);
          if (known) known.header = line.c;
          else campaigns.set(line.c.id, { header: line.c, devices: new Map() });
        } else {
          const known = campaigns.get(line.c);
          if (known) for (const d of line.d) known.devices.set(d.id, d);
        }
      }
    const out = [...campaigns.values()].map(({ header, devices }) => ({
      ...header,
      devices: [...devices.values()],
    }));
    // Compact: one header and one device line per campaign, replaced atomically.
    const lines = out.map((c) => {
      const { devices, ...header } = c;
      return `${JSON.stringify({ t: 'c', c: header })}\n${JSON.stringify({ t: 'd', c: c.id, d: devices })}\n`;
    });
    writeFileAtomicSync(this.file, lines.join(''));
    this.fd = openSync(this.file, 'a', 0o600);
    return out;
  }

  putCampaign(header: CampaignHeader): void {
    this.append({ t: 'c', c: header });
    this.sync();
  }

  putDevices(campaignId: string, devices: readonly CampaignDevice[], durable: boolean): void {
    if (devices.length === 0) return;
    this.append({ t: 'd', c: campaignId, d: devices as CampaignDevice[] });
    if (durable) this.sync();
  }

  close(): void {
    clearInterval(this.syncTimer);
    this.sync();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private sync(): void {
    if (!this.dirty || this.fd === undefined) return;
    this.dirty = false;
    fdatasyncSync(this.fd);
  }

  private append(line: Line): void {
    if (this.fd === undefined) throw new Error('campaign store used before load() or after close()');
    writeSync(this.fd, JSON.stringify(line) + '\n');
    this.dirty = true;
  }
}
