/**
 * Bounds and word lists of the storage messages (storage-messages.ts) that the CLI shows in
 * its help and checks its options against. Plain values, no schemas: the CLI loads them at
 * start-up without the wire protocol's schemas (and zod). storage-messages.ts builds its
 * schemas from them and re-exports them.
 */

/** Most blocks one host I/O may move (1 MiB at the default 4 KiB block). */
export const BLOCKS_PER_IO_MAX = 256

/** Most blocks one digest request may cover (256 MiB at 4 KiB blocks); the array reads them in bounded chunks. */
export const DIGEST_BLOCKS_MAX = 65536

/** How a Remote Copy group replicates: every write at once, or in periodic deltas. */
export const RC_MODES = ['sync', 'periodic'] as const

/** The longest period of a periodic group, ms (a week). */
export const RC_PERIOD_MS_MAX = 7 * 24 * 3600 * 1000

/** What a synchronous group does with a host write when the partner cannot take it. */
export const RC_WRITE_ERROR_POLICIES = ['no_fail_wrt_on_err', 'fail_wrt_on_err'] as const

/**
 * Virtual disks a lab VM has at most (`vm create --disks N`): disk 0 and its data disks,
 * all of one size. A replicated VM's disks are volumes in its one remote-copy group (the
 * array keeps them consistent together); a CSV VM's are regions of one CSV.
 */
export const VM_DISKS_MAX = 8
