/**
 * Hyper-V Replica's numbers, apart from its messages (replica-messages.ts) so that the CLI
 * can name them in its options without loading the protocol's schemas at start-up.
 */
/** The frequencies Replica offers (seed 002): 30 s, 5 min, 15 min, before the lab's timeScale. */
export const REPLICATION_FREQUENCIES_MS = [30_000, 300_000, 900_000] as const
/** Extended replication (a replica forwarding to a third server) offers 5 and 15 minutes (seed 004). */
export const EXTENDED_FREQUENCIES_MS = [300_000, 900_000] as const
export const RECOVERY_POINTS_MAX = 24
/** Block hashes in one replica-hashes reply at most (32 bytes each: 512 KiB). */
export const HASHES_PER_REQUEST_MAX = 16_384
/** A replicated disk's blocks at most (4 GiB of 4 KiB blocks). */
export const REPLICA_DISK_BLOCKS_MAX = 1 << 20
/** A replicated disk's bytes at most, whatever its block size: the lab's largest VM disk (a replica server holds each in memory). */
export const REPLICA_DISK_BYTES_MAX = 4 * 1024 ** 3
/** A primary's begin or resync that failed is tried again after this long (or a cycle, when shorter). */
export const REPLICA_RETRY_MS = 5_000
/** Primary servers a replica server's allow list names at most. */
export const REPLICA_ALLOW_MAX = 64
/** The cluster's Replica Broker role (`hvlab replica server enable cluster`): one per cluster, this name. */
export const REPLICA_BROKER_ROLE = 'replica-broker'
/** Replica servers a broker's allow list names at most (its settings live in one cluster database entry). */
export const REPLICA_BROKER_ALLOW_MAX = 8
/** How the initial copy reaches the replica (seed 004's options): over the network, by an export to media imported on the replica server, or from a copy already there. */
export const INITIAL_REPLICATION_MODES = ['network', 'export', 'seed'] as const
export type InitialReplicationMode = (typeof INITIAL_REPLICATION_MODES)[number]
/** An initial replication may be scheduled up to this far ahead (Hyper-V: seven days). */
export const INITIAL_START_AHEAD_MS_MAX = 7 * 24 * 3_600_000
/** A path to an export folder or file, in bytes at most. */
export const REPLICA_PATH_BYTES_MAX = 1024
/** The longest churn measurement (`hvlab replica size`): a week of the lab's time (the seed: "monitored over a typical week"). */
export const SIZING_DURATION_MS_MAX = 7 * 24 * 3600_000
/** Replication's own bandwidth cap (`replica enable --max-mbit`): 0.01 Mbit/s (10 kbit/s) to 100 Gbit/s. */
export const REPLICATION_MBIT_MIN = 0.01
export const REPLICATION_MBIT_MAX = 100_000
/**
 * `replica enable --app-consistent-every-h N`: every N hours (Hyper-V's VSS snapshot
 * frequency, 1 to 12) a recovery point is application-consistent (the guest quiesced).
 */
export const APP_CONSISTENT_EVERY_H_MIN = 1
export const APP_CONSISTENT_EVERY_H_MAX = 12
/** What a recovery point holds: the disk as a crash would leave it, or as the guest's quiesced application left it. */
export const RECOVERY_POINT_KINDS = ['crash', 'application'] as const
export type RecoveryPointKind = (typeof RECOVERY_POINT_KINDS)[number]
/** A VM created on a standalone host (`hvlab vm create --on HOST`): its disk's block, as a cluster VM's (agent/vm/vm-disk.ts). */
export const STANDALONE_VM_BLOCK_BYTES = 4096
/** Its memory, MiB: as `hvlab vm create` takes for a role (the host's own memory bounds it further). */
export const STANDALONE_VM_MEMORY_MIB_MIN = 32
export const STANDALONE_VM_MEMORY_MIB_MAX = 4 * 1024 * 1024
