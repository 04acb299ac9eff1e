/**
 * Event times for readings sent without `ts`. InfluxDB keeps one point per series and time, so two readings
 * of one device received in the same millisecond must not get the same time: the receive time is made
 * strictly increasing per device. Normally that is the receive time in whole milliseconds; when the device
 * already has a reading at (or after) it, the next free microsecond — a millisecond number with a fraction,
 * which iotb-influx-write writes exactly at its nanosecond precision.
 *
 * One clock per process (`readingClock`), shared by every validate node, so two ingest paths of one device
 * cannot collide either. Memory: an entry per device; an entry earlier than the receive time has no effect
 * (the receive time wins), so when the map reaches `maxDevices` those are swept out. Should every entry still
 * be ahead (more devices than the bound within one millisecond), the map is cleared and the latest time
 * handed out becomes a floor for every device, which keeps the times strictly increasing.
 */
export class ReadingClock {
  private readonly lastUs = new Map<string, number>();
  private floorUs = 0;

  constructor(private readonly maxDevices = 100_000) {
    if (!(maxDevices >= 1))
      throw new RangeError(`a reading clock needs room for a device (got ${maxDevices})`);
  }

  /** The time (ms since epoch, possibly with a microsecond fraction) for `device`'s reading received at `nowMs`. */
  next(device: string, nowMs: number): number {
    const nowUs = Math.trunc(nowMs) * 1000;
    const known = this.lastUs.get(device);
    const last = known ?? this.floorUs;
    const us = nowUs > last ? nowUs : last + 1;
    if (known === undefined && this.lastUs.size >= this.maxDevices) this.sweep(nowUs);
    this.lastUs.set(device, us);
    return us / 1000;
  }

  /** Devices whose last time is not yet in the past (for tests). */
  get size(): number {
    return this.lastUs.size;
  }

  private sweep(nowUs: number): void {
    for (const [device, us] of this.lastUs) if (us < nowUs) this.lastUs.delete(device);
    if (this.lastUs.size < this.maxDevices) return;
    for (const us of this.lastUs.values()) if (us > this.floorUs) this.floorUs = us;
    this.lastUs.clear();
  }
}

/** The process-wide clock for readings without `ts`. */
export const readingClock = new ReadingClock();
