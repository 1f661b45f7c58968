/**
 * Bounds and word lists of the cluster messages (cluster-messages.ts) that the CLI shows in
 * its help and checks its options against. Plain values, no schemas: the CLI loads them at
 * start-up without the wire protocol's schemas (and zod).
 */

/** WSFC's role priority: high, medium (the default) and low order starts and failovers; none = No Auto Start. */
export const ROLE_PRIORITIES = ['high', 'medium', 'low', 'none'] as const

/** Most block writes per second a VM's disk writer may be asked for. */
export const VM_DISK_IOPS_MAX = 10_000

/** Longest `hvlab vm hang` (`vm-hang-request` for_ms): an hour. */
export const GUEST_HANG_MS_MAX = 3_600_000

/** WSFC's FailoverThreshold of one role (failovers within its period) at most; as the failover policy's counts. */
export const ROLE_FAILOVER_THRESHOLD_MAX = 1000
/** WSFC's FailoverPeriod of one role, hours: 1 to 1193 (what Failover Cluster Manager accepts). */
export const ROLE_FAILOVER_PERIOD_H_MIN = 1
export const ROLE_FAILOVER_PERIOD_H_MAX = 1193
