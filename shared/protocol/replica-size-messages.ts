/**
 * `hvlab replica size VM --minutes N` (seed 002's "how much bandwidth will you need?",
 * answered by measurement): the operator asks the host running the VM to record its guest
 * disk writes for a while (agent/replica/churn-measurements.ts), then asks how it stands
 * until it is done; the answer is what each replication frequency needs.
 *
 *   replica-size-request        (operator → the VM's host: begin) → replica-size-reply
 *   replica-size-status-request (operator → that host: how it stands) → replica-size-reply
 */
import { z } from 'zod'
import { defineMessage, field } from './define.js'
import { REPLICATION_FREQUENCIES_MS, SIZING_DURATION_MS_MAX } from './replica-limits.js'

export { SIZING_DURATION_MS_MAX }

export const replicaSizeRequest = defineMessage('replica-size-request', () => ({
  vm: field.name(),
  /** How long to measure, in the lab's time (scaled by its timeScale as the frequencies are). */
  duration_ms: z.number().int().min(1).max(SIZING_DURATION_MS_MAX),
}))

export const replicaSizeStatusRequest = defineMessage('replica-size-status-request', () => ({ vm: field.name() }))

const frequencySizing = () =>
  z.strictObject({
    /** The frequency Replica offers (30 s, 5 min, 15 min), in the lab's time. */
    frequency_ms: z.union(REPLICATION_FREQUENCIES_MS.map((f) => z.literal(f))),
    /** Its cycle as the lab runs it (scaled by timeScale): the real time a shipment has to cross the link. */
    cycle_ms: field.uint(),
    cycles: field.uint(),
    full_cycles: field.uint(),
    peak_cycle_bytes: field.uint(),
    peak_bytes_per_s: z.number().finite().min(0),
    total_bytes: field.uint(),
    mean_bytes_per_s: z.number().finite().min(0),
  })
export type FrequencySizingView = z.infer<ReturnType<typeof frequencySizing>>

/** How a measurement stands: `frequencies` once done; `interrupted` with why (its code) when the VM stopped or left the host. */
export const replicaSizeReply = defineMessage('replica-size-reply', () => ({
  vm: field.name(),
  host: field.name(),
  state: z.enum(['measuring', 'done', 'interrupted']),
  time_scale: z.number().positive().max(1),
  /** Asked, in the lab's time. */
  duration_ms: z.number().int().min(1).max(SIZING_DURATION_MS_MAX),
  /** The real time it records for (duration × timeScale), and how much of it has gone by. */
  measured_ms: field.uint(),
  elapsed_ms: field.uint(),
  block_size_bytes: field.uint(),
  /** Guest writes recorded (acknowledged or in doubt; a refused write wrote nothing). */
  writes: field.uint(),
  frequencies: field.list(frequencySizing(), REPLICATION_FREQUENCIES_MS.length),
  error: field.text(300).nullable(),
  error_code: field.text(64).nullable(),
}))

export const replicaSizeMessages = [replicaSizeRequest, replicaSizeStatusRequest, replicaSizeReply] as const
