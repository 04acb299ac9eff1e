/**
 * Prometheus gauges of every open writer spool: depth in records and bytes, and free space on its volume. They
 * are sampled at scrape time from the spools themselves, so they cannot go stale.
 */
import { sampledGauge } from '../metrics';
import type { Spool } from './spool';

type GaugedSpool = Pick<Spool, 'stats' | 'volume' | 'condition'>;

interface Tracked {
  name: string;
  spool: GaugedSpool;
}

/** Writer id -> its spool; process-wide like the registry (a second copy of this module must see the same). */
const tracked: Map<string, Tracked> = ((globalThis as Record<symbol, Map<string, Tracked> | undefined>)[
  Symbol.for('node-red-contrib-iot-backend.spool-gauges')
] ??= new Map<string, Tracked>());

const LABELS = ['writer', 'name'] as const;

function perSpool(name: string, help: string, value: (s: GaugedSpool) => number | undefined): void {
  sampledGauge(name, help, LABELS, (g) => {
    for (const [writer, t] of tracked) {
      const v = value(t.spool);
      if (v !== undefined) g.set({ writer, name: t.name }, v);
    }
  });
}

perSpool(
  'iotb_spool_pending_records',
  'Records in the spool waiting for delivery',
  (s) => s.stats().pendingRecords,
);
perSpool(
  'iotb_spool_pending_bytes',
  'Bytes in the spool waiting for delivery (frames included)',
  (s) => s.stats().pendingBytes,
);
perSpool(
  'iotb_spool_volume_free_bytes',
  'Free bytes on the volume holding the spool (statfs)',
  (s) => s.volume()?.freeBytes,
);
perSpool(
  'iotb_spool_volume_size_bytes',
  'Size of the volume holding the spool',
  (s) => s.volume()?.sizeBytes,
);
perSpool(
  'iotb_spool_max_bytes',
  'The bound of the spool (its writer refuses or drops beyond it)',
  (s) => s.condition().maxBytes,
);
perSpool('iotb_spool_refusing', '1 while the spool refuses appends (spool or volume full)', (s) => {
  const st = s.stats();
  return st.full || st.diskFull ? 1 : 0;
});

/** Reports `spool` under the writer's id and name until the returned function is called. */
export function trackSpool(writer: string, name: string, spool: GaugedSpool): () => void {
  tracked.set(writer, { name, spool });
  return () => {
    if (tracked.get(writer)?.spool === spool) tracked.delete(writer);
  };
}
