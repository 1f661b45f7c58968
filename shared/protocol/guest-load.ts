/**
 * A VM's guest load as `hvlab vm load` sets it, in its own module: the VM role
 * (cluster-messages.ts) keeps it, and a Replica failover (replica-messages.ts) starts the
 * replica VM with it.
 */
import { z } from 'zod'
import { VM_DISK_IOPS_MAX } from './cluster-limits.js'

/**
 * A VM's guest workload as `vm load` sets it (each field optional: only what the operator
 * set). The role keeps it, and every start of the VM applies it again: a guest restarted by
 * a failover runs its applications again.
 */
export const guestLoadSchema = z.strictObject({
  dirty_mib_per_s: z.number().min(0).max(4096).optional(),
  hot_fraction: z.number().gt(0).max(1).optional(),
  /** Block writes per second to the VM's disk (0 = idle). */
  disk_iops: z.number().int().min(0).max(VM_DISK_IOPS_MAX).optional(),
})
export type GuestLoadSetting = z.infer<typeof guestLoadSchema>
