/** The array's Prometheus metrics (hvlab_array_*): base units, `_total` counters, no ids in labels. */
import { Counter, Gauge, type Registry } from 'prom-client'

export const REFUSAL_REASONS = [
  'unknown-volume',
  'out-of-range',
  'wrong-size',
  'not-presented',
  'stale-epoch',
  'replication',
  'other',
] as const
export type RefusalReason = (typeof REFUSAL_REASONS)[number]

export interface ArrayMetrics {
  writes: Counter
  writeBytes: Counter
  reads: Counter
  readBytes: Counter
  refusals: Counter<'reason'>
  resyncBytes: Counter
  /** Blocks a full resync compared by hash and did not send (the partner had them). */
  resyncBlocksSkipped: Counter
  volumes: Gauge
}

export function createArrayMetrics(registry: Registry): ArrayMetrics {
  const registers = [registry]
  const refusals = new Counter({
    name: 'hvlab_array_io_refusals_total',
    help: 'Host I/Os the array refused, by reason',
    labelNames: ['reason'],
    registers,
  })
  for (const r of REFUSAL_REASONS) refusals.inc({ reason: r }, 0)
  return {
    writes: new Counter({
      name: 'hvlab_array_writes_total',
      help: 'Host writes acknowledged (durable, and on the partner in sync mode)',
      registers,
    }),
    writeBytes: new Counter({ name: 'hvlab_array_write_bytes_total', help: 'Bytes of acknowledged host writes', registers }),
    reads: new Counter({ name: 'hvlab_array_reads_total', help: 'Host and operator reads served', registers }),
    readBytes: new Counter({ name: 'hvlab_array_read_bytes_total', help: 'Bytes of reads served', registers }),
    refusals,
    resyncBytes: new Counter({
      name: 'hvlab_array_rc_resync_bytes_total',
      help: 'Bytes sent to a partner array in resync or periodic delta batches',
      registers,
    }),
    resyncBlocksSkipped: new Counter({
      name: 'hvlab_array_rc_resync_blocks_skipped_total',
      help: 'Blocks a full resync compared by hash and did not send because the partner already held them',
      registers,
    }),
    volumes: new Gauge({ name: 'hvlab_array_volumes', help: 'Virtual volumes on this array', registers }),
  }
}
