/**
 * What a replica server keeps of each replica VM beside its disk (`vm.json`), so that it
 * opens its replicas again when it restarts, even while their primary is down (a disaster
 * is when a failover is wanted): the disks' geometry (and which of them replicate), the VM's memory, the recovery points
 * asked for, the primary that replicated it last (itself, for a VM created here), whether it holds an initial copy, whether it
 * has failed over (and where its changes replicate back to), and where it is forwarded
 * (extended replication); for a VM that runs here, whether it was stopped and its guest's
 * load, so that it starts again with the server (Hyper-V's automatic start action).
 */
import { join } from 'node:path'
import { z } from 'zod'
import { HvlabError } from '../../shared/errors.js'
import { readDurableJson, writeDurableJson } from '../../shared/durable-json.js'
import { field } from '../../shared/protocol/define.js'
import { RECOVERY_POINTS_MAX, REPLICA_DISK_BLOCKS_MAX } from '../../shared/protocol/replica-limits.js'
import { guestLoadSchema } from '../../shared/protocol/guest-load.js'
import { VM_DISKS_MAX } from '../../shared/protocol/storage-limits.js'
import {
  REPLICA_VM_STATES,
  extensionSchema,
  includedDisks,
  replicationSettingSchema,
  reverseSchema,
} from '../../shared/protocol/replica-messages.js'

const recordSchema = z.strictObject({
  format: z.literal(1),
  vm: field.name(),
  block_size_bytes: field.u32(),
  disk_blocks: z.number().int().min(1).max(REPLICA_DISK_BLOCKS_MAX),
  /** The VM's disks, of disk_blocks / disks blocks each (agent/replica/disk-set.ts); absent: 1. */
  disks: z.number().int().min(2).max(VM_DISKS_MAX).optional(),
  /** The disks its primary replicates (`replica enable --disks`); absent: every one. */
  included_disks: includedDisks().optional(),
  memory_mib: z.number().int().min(1),
  recovery_points: z.number().int().min(0).max(RECOVERY_POINTS_MAX),
  from: field.name(),
  state: z.enum(REPLICA_VM_STATES),
  /** It holds an initial copy (imported, or a resync finished); absent in older records: judged by its applied cycle. */
  has_copy: z.boolean().optional(),
  /** Extended replication: where this server forwards the replica. */
  extension: extensionSchema.optional(),
  /** Failed over (planned): how the VM's changes replicate back to the cluster (reverse replication). */
  reverse: z.preprocess(withoutReverseHost, reverseSchema).optional(),
  /** A VM that runs here (failed over, or created here) was stopped (`vm stop`, a fail-back): it does not start again with the server. */
  stopped: z.literal(true).optional(),
  /** The guest load it last ran with here: it starts again with it. */
  load: guestLoadSchema.optional(),
  /** A VM that runs here and is no cluster role's: the standalone host it replicates to (`hvlab replica enable`). */
  replication: replicationSettingSchema.optional(),
})
/** A record written before the Replica Broker names the one host the changes went back to (`to`): the broker places them now. */
function withoutReverseHost(v: unknown): unknown {
  if (v === null || typeof v !== 'object' || !('to' in v)) return v
  const { to: _to, ...rest } = v as Record<string, unknown>
  return rest
}

export type ReplicaVmRecord = Omit<z.infer<typeof recordSchema>, 'format'>

export const recordPath = (dir: string): string => join(dir, 'vm.json')

export async function writeReplicaVmRecord(dir: string, r: ReplicaVmRecord): Promise<void> {
  await writeDurableJson(recordPath(dir), { format: 1, ...r })
}

/** The record in `dir`; undefined when there is none (a replica begun before records were kept, or never). */
export async function readReplicaVmRecord(dir: string): Promise<ReplicaVmRecord | undefined> {
  const raw = await readDurableJson(recordPath(dir))
  if (raw === undefined) return undefined
  const r = recordSchema.safeParse(raw)
  if (!r.success)
    throw new HvlabError('HVLAB_E_STATE', `${recordPath(dir)} is not a replica VM's record; remove the folder and replicate the VM again`)
  const { format: _format, ...record } = r.data
  return record
}
