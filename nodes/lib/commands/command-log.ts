import { closeSync, existsSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { writeFileAtomicSync } from '../atomic-file';
import type { CommandRecord } from './states';

/** The switches that refuse commands; persisted so that a restart never silently re-enables sending. */
export interface SwitchState {
  on: boolean;
  at: number;
  reason?: string;
}

export interface ControlState {
  killSwitch: SwitchState;
  /** Devices in safe mode, by id. Only devices whose switch is on are kept. */
  safeMode: Map<string, SwitchState>;
}

type LogLine =
  { t: 'c'; r: CommandRecord } | { t: 'k'; s: SwitchState } | { t: 's'; d: string; s: SwitchState };

/**
 * Commands and switches persisted as an append-only JSON-lines log in the Node-RED user dir.
 *
 * Why a log and not a snapshot per change: a transition costs one small `write` (no rewrite of every command),
 * so dispatching thousands of commands per second stays cheap. Each write goes to the OS before the call returns,
 * so a killed process loses nothing; `fdatasync` runs at most every `syncIntervalMs`, so a power cut loses at most
 * that window. On load the last line per command wins; a torn last line (crash mid-write) is skipped. The log is
 * compacted (rewritten with `writeFileAtomicSync` from the live state) at start and when most of its lines
 * belong to commands no longer kept.
 */
export class CommandLog {
  private fd: number;
  private lines = 0;
  private dirty = false;
  private readonly syncTimer: NodeJS.Timeout;

  constructor(
    readonly file: string,
    syncIntervalMs = 100,
  ) {
    this.fd = openSync(file, 'a', 0o600);
    this.syncTimer = setInterval(() => this.sync(), syncIntervalMs);
    this.syncTimer.unref();
  }

  /** Reads the log: every command's latest record and the switch states. Lines that do not parse are skipped. */
  static read(file: string): { commands: Map<string, CommandRecord>; control: ControlState; lines: number } {
    const commands = new Map<string, CommandRecord>();
    const control: ControlState = { killSwitch: { on: false, at: 0 }, safeMode: new Map() };
    let lines = 0;
    if (!existsSync(file)) return { commands, control, lines };
    for (const text of readFileSync(file, 'utf8').split('\n')) {
      if (!text) continue;
      // A line of a kind this version does not know is skipped, not misread.
      let line: LogLine | { t?: never };
      try {
        line = JSON.parse(text) as typeof line;
      } catch {
        continue; // a torn write from a crash: the state before it is intact
      }
      lines++;
      if (line.t === 'c') {
        commands.delete(line.r.id); // re-insert so iteration order is order of last change
        commands.set(line.r.id, line.r);
      } else if (line.t === 'k') control.killSwitch = line.s;
      else if (line.t === 's') {
        if (line.s.on) control.safeMode.set(line.d, line.s);
        else control.safeMode.delete(line.d);
      }
    }
    return { commands, control, lines };
  }

  get lineCount(): number {
    return this.lines;
  }

  putCommand(record: CommandRecord): void {
    this.append({ t: 'c', r: record });
  }

  putKillSwitch(s: SwitchState): void {
    this.append({ t: 'k', s });
  }

  putSafeMode(deviceId: string, s: SwitchState): void {
    this.append({ t: 's', d: deviceId, s });
  }

  /** Replaces the log with exactly the given state (atomic), then keeps appending to the new file. */
  compact(commands: Iterable<CommandRecord>, control: ControlState): void {
    const out: string[] = [JSON.stringify({ t: 'k', s: control.killSwitch })];
    for (const [d, s] of control.safeMode) out.push(JSON.stringify({ t: 's', d, s }));
    for (const r of commands) out.push(JSON.stringify({ t: 'c', r }));
    writeFileAtomicSync(this.file, out.join('\n') + '\n');
    closeSync(this.fd);
    this.fd = openSync(this.file, 'a', 0o600);
    this.lines = out.length;
    this.dirty = false;
  }

  sync(): void {
    if (!this.dirty) return;
    this.dirty = false;
    fdatasyncSync(this.fd);
  }

  close(): void {
    clearInterval(this.syncTimer);
    this.sync();
    closeSync(this.fd);
  }

  private append(line: LogLine): void {
    writeSync(this.fd, JSON.stringify(line) + '\n');
    this.lines++;
    this.dirty = true;
  }
}
