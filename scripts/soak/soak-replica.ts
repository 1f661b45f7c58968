/**
 * Hyper-V Replica in a soak (the shell side; replica-check.ts judges): when the topology
 * has a standalone host, the soak makes the first one a replica server (taking any host of
 * the lab) and replicates its first VM to it every 30 s (scaled by the topology's
 * timeScale), from before its disk writer starts. The first VM is the one whose disk is
 * always synchronously replicated between the arrays (soak-runner.ts soakStorage), so its
 * writes are held to both promises: the arrays' and the replica's. At the end, once the
 * writers stopped, the soak waits for replication to catch up (nothing pending, nothing in
 * flight, no resync) and reads what each block the VM wrote holds on the replica server's
 * storage.
 */
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { z } from 'zod'
import { scaled } from '../../shared/clock.js'
import { labLayout } from '../../shared/lab-layout.js'
import type { Topology } from '../../shared/topology.js'
import type { RecordOf } from './history.js'
import type { SoakLab } from './soak-lab.js'

/** The replication frequency the soak asks for (Replica's shortest). */
export const SOAK_REPLICA_FREQUENCY = '30s'
const SOAK_REPLICA_FREQUENCY_MS = 30_000
/** How long `replica enable` may wait for the initial replication. */
const ENABLE_TIMEOUT_S = 120
/** The catch-up at the end may take this long plus two cycles (a resync after the last fault, then a cycle). */
const CATCH_UP_BASE_MS = 60_000

export interface SoakReplica {
  vm: string
  server: string
  /** The cycle as the lab runs it (timeScale applied), ms. */
  frequency_ms: number
}

/** What the soak replicates where: its first VM to the topology's first standalone host; null without one. */
export function soakReplicaOf(t: Topology, vms: readonly string[]): SoakReplica | null {
  const server = t.standalone_hosts[0]?.name
  const vm = vms[0]
  if (server === undefined || vm === undefined) return null
  return { vm, server, frequency_ms: scaled(SOAK_REPLICA_FREQUENCY_MS, t.timeScale) }
}

export async function enableReplicaServer(lab: SoakLab, r: SoakReplica): Promise<void> {
  await lab.must('replica', 'server', 'enable', r.server, '--allow', 'any')
}

/** Replicates the VM (running, not writing yet) and waits for its initial replication. */
export async function enableReplication(lab: SoakLab, r: SoakReplica): Promise<RecordOf<'replica'>> {
  const args = ['--to', r.server, '--frequency', SOAK_REPLICA_FREQUENCY, '--timeout-s', String(ENABLE_TIMEOUT_S)]
  await lab.must('replica', 'enable', r.vm, ...args)
  return { t: 'replica', vm: r.vm, server: r.server, frequency_ms: r.frequency_ms, enabled_ms: Date.now() }
}

/** What the soak reads of `replica status VM --json` (validated: it is another program's output). */
const statusView = z.array(
  z.object({
    vm: z.string(),
    primary: z.object({ pending_bytes: z.number(), in_flight: z.number().nullable(), resyncing: z.boolean() }).nullable(),
  }),
)

async function caughtUp(lab: SoakLab, vm: string): Promise<boolean> {
  const r = await lab.cli('replica', 'status', vm, '--json')
  if (r.exit !== 0) return false
  let json: unknown
  try {
    json = JSON.parse(r.stdout)
  } catch {
    return false
  }
  const parsed = statusView.safeParse(json)
  const p = parsed.success ? parsed.data.find((v) => v.vm === vm)?.primary : null
  return p !== null && p !== undefined && p.pending_bytes === 0 && p.in_flight === null && !p.resyncing
}

/** Waits (the writers stopped) until everything written was applied on the replica; when, or null if it never was. */
export async function waitReplicaCaughtUp(lab: SoakLab, r: SoakReplica): Promise<RecordOf<'replica-end'>> {
  const deadline = Date.now() + CATCH_UP_BASE_MS + 2 * r.frequency_ms
  for (;;) {
    if (await caughtUp(lab, r.vm)) return { t: 'replica-end', vm: r.vm, server: r.server, caught_up_ms: Date.now() }
    if (Date.now() > deadline) return { t: 'replica-end', vm: r.vm, server: r.server, caught_up_ms: null }
    await new Promise((res) => setTimeout(res, 250))
  }
}

/**
 * The replica's disk on the replica server's storage (agent/replica/replica-store.ts:
 * `<its data dir>/replica/vms/<vm>/disk.img`, the disk as the last applied cycle left it).
 */
export const replicaDiskFile = (labDir: string, r: Pick<SoakReplica, 'vm' | 'server'>): string =>
  join(labLayout(labDir).processData(r.server), 'replica', 'vms', r.vm, 'disk.img')

/** The sha256 of each of the first `blocks` blocks of the replica; none when its disk cannot be read (the checker then finds them missing). */
export function replicaFinalBlocks(labDir: string, r: SoakReplica, blocks: number, block_size_bytes: number): RecordOf<'replica-final'>[] {
  let image: Buffer
  try {
    image = readFileSync(replicaDiskFile(labDir, r))
  } catch {
    return []
  }
  const out: RecordOf<'replica-final'>[] = []
  for (let block = 0; block < blocks && (block + 1) * block_size_bytes <= image.length; block++) {
    const sha256 = createHash('sha256')
      .update(image.subarray(block * block_size_bytes, (block + 1) * block_size_bytes))
      .digest('hex')
    out.push({ t: 'replica-final', vm: r.vm, server: r.server, block, sha256 })
  }
  return out
}
