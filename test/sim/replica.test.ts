/**
 * Hyper-V Replica's protocol, seeded: the primary's real sender machine (replica-sender.ts)
 * ships its log over the real part frames (shipment-sender.ts) to the real replica side
 * (replica-receiver.ts over a replica-store.ts on disk), through a link that fails sends
 * and loses answers, while the replica server crashes now and then (some crashes in the
 * middle of persisting a cycle) and guest writes come at random. Checked at every step:
 *
 *   - the replica's durable disk is exactly the primary's disk as some log closed (or as a
 *     resync left it), never half a cycle: crash-consistent;
 *   - the cycle it is at only moves forward;
 *   - once the writes stop, replication catches up: the replica equals the primary.
 *
 * A failing seed is printed with the command that reruns it (HVLAB_SEED, see seed.ts).
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HvlabError } from '../../shared/errors.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import type { Message } from '../../shared/protocol/messages.js'
import { ReplicaReceiver } from '../../agent/replica/replica-receiver.js'
import { ReplicaSender, type ReplicaSenderEffect } from '../../agent/replica/replica-sender.js'
import { ReplicaStore } from '../../agent/replica/replica-store.js'
import type { LogShipment } from '../../agent/replica/replica-log.js'
import { sendShipment, type PartRequester } from '../../agent/replica/shipment-sender.js'
import { forEachSeed, seeds } from './seed.js'

const BS = 512
const BLOCKS = 64
const G = { vm: 'vm1', block_size_bytes: BS, disk_blocks: BLOCKS }
const STEP_MS = 50
const THRESHOLDS = { frequency_ms: 300, warning_after_ms: 600, critical_after_ms: 3000 }

interface Chances {
  send_fails: number
  answer_lost: number
  replica_crash: number
  crash_mid_persist: number
}

class ReplicaSim {
  readonly rand: () => number
  readonly primary = new Uint8Array(BLOCKS * BS)
  /** The primary's disk as each cycle's log closed (and as each resync left the replica). */
  readonly images = new Map<number, Uint8Array>([[0, new Uint8Array(BLOCKS * BS)]])
  readonly sender: ReplicaSender
  store!: ReplicaStore
  receiver!: ReplicaReceiver
  now_ms = 0
  problem: string | null = null
  private last_durable = 0
  stats = { applied: 0, resyncs: 0, crashes: 0 }

  constructor(
    seed: number,
    readonly dir: string,
    readonly chances: Chances,
  ) {
    this.rand = mulberry32(seed)
    this.sender = new ReplicaSender({ ...G, thresholds: THRESHOLDS }, 0)
  }

  async start(): Promise<void> {
    await this.openReplica()
  }

  /** The replica server (re)starts from what its store holds. */
  async openReplica(): Promise<void> {
    this.store = await ReplicaStore.open(this.dir, G)
    this.receiver = new ReplicaReceiver({
      vm: 'vm1',
      disk: this.store.disk,
      recovery_points: 0,
      point_every_ms: 0,
      clock_skew_ms: 100,
      staged_bytes_max: 1 << 20,
      applied_cycle: this.store.appliedCycle,
    })
  }

  async step(writes_max: number): Promise<void> {
    this.now_ms += STEP_MS
    const writes = Math.floor(this.rand() * (writes_max + 1))
    for (let i = 0; i < writes; i++) await this.run(this.sender.step(this.guestWrite(), this.now_ms))
    await this.run(this.sender.step({ kind: 'timer' }, this.now_ms))
    if (this.rand() < this.chances.replica_crash) {
      this.stats.crashes++
      await this.openReplica()
    }
    this.check()
  }

  private guestWrite(): { kind: 'write'; block: number; data: Uint8Array } {
    const block = Math.floor(this.rand() * BLOCKS)
    const data = new Uint8Array(BS).fill(1 + Math.floor(this.rand() * 255))
    this.primary.set(data, block * BS)
    return { kind: 'write', block, data }
  }

  private async run(effects: ReplicaSenderEffect[]): Promise<void> {
    for (const e of effects) {
      if (e.kind === 'ship') await this.ship(e.shipment)
      else if (e.kind === 'resync') await this.resync()
    }
  }

  private async ship(s: LogShipment): Promise<void> {
    // a shipment is made in the step its log closes, after that step's writes: the primary now is its image
    if (!this.images.has(s.cycle)) this.images.set(s.cycle, this.primary.slice())
    const outcome = await sendShipment(this.link(), s, {
      block_size_bytes: BS,
      compression: 'deflate',
      part_body_bytes_max: 4 + 8 * (4 + BS),
      timeout_ms: 1000,
    })
    await this.run(this.sender.step(outcome, this.now_ms))
  }

  /** A connection to the replica server that may fail a send or lose an answer. */
  private link(): PartRequester {
    return {
      request: async (message: Message, options: { attachment?: Uint8Array }) => {
        if (this.rand() < this.chances.send_fails) throw new HvlabError('HVLAB_E_CLOSED', 'the link failed')
        if (message.t !== 'replica-log-part') throw new Error('only parts travel here')
        const out = this.receiver.onPart(message, options.attachment ?? new Uint8Array(), this.now_ms)
        if (out.applied) await this.persist(out.applied)
        if (this.rand() < this.chances.answer_lost) throw new HvlabError('HVLAB_E_TIMEOUT', 'the answer was lost')
        return { message: out.answer }
      },
    }
  }

  /** The shell's persist before answering; sometimes the replica server dies in the middle of it. */
  private async persist(s: LogShipment): Promise<void> {
    if (this.rand() < this.chances.crash_mid_persist) {
      await this.store.logPending(s)
      if (this.rand() < 0.5) await this.store.writeBlocks(s)
      this.stats.crashes++
      await this.openReplica() // the redo log brings the cycle in
      throw new HvlabError('HVLAB_E_CLOSED', 'the replica server died before it answered')
    }
    await this.store.persist(s)
    this.stats.applied++
  }

  /** The resync the sender asked for: the replica made equal to the primary now, the next cycle after it. */
  private async resync(): Promise<void> {
    this.stats.resyncs++
    const next = this.sender.nextCycle
    const blocks = []
    for (let b = 0; b < BLOCKS; b++) {
      const data = this.primary.subarray(b * BS, (b + 1) * BS)
      if (Buffer.compare(data, this.store.disk.readBlock(b)) !== 0) blocks.push({ block: b, data: data.slice() })
    }
    for (const b of blocks) this.store.disk.writeBlock(b.block, b.data)
    await this.store.writeBlocks({ vm: 'vm1', cycle: next - 1, closed_at_ms: this.now_ms, blocks, writes_logged: 0, logged_bytes: 0 })
    await this.store.markApplied(next - 1)
    this.receiver.resynced(next)
    this.images.set(next - 1, this.primary.slice())
    await this.run(this.sender.step({ kind: 'resynced' }, this.now_ms))
  }

  private check(): void {
    if (this.problem) return
    const cycle = this.store.appliedCycle
    if (cycle < this.last_durable) this.problem = `the replica went back from cycle ${this.last_durable} to ${cycle}`
    this.last_durable = cycle
    const want = this.images.get(cycle)
    if (!want) this.problem ??= `the replica is at cycle ${cycle}, which no log closed`
    else if (Buffer.compare(this.replicaDisk(), want) !== 0)
      this.problem ??= `at ${this.now_ms} ms the replica is not the primary's disk of cycle ${cycle}: half a cycle, or another`
  }

  replicaDisk(): Uint8Array {
    return diskOf(this.store)
  }
}

function diskOf(store: ReplicaStore): Uint8Array {
  const out = new Uint8Array(BLOCKS * BS)
  for (let b = 0; b < BLOCKS; b++) out.set(store.disk.readBlock(b), b * BS)
  return out
}

/** What the seeds did, over all of them: a check that the faults really came. */
const totals = { applied: 0, resyncs: 0, crashes: 0 }

async function runSeed(seed: number, chances: Chances): Promise<string | null> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-replica-sim-'))
  try {
    const sim = new ReplicaSim(seed, dir, chances)
    await sim.start()
    try {
      return await drive(sim, dir)
    } finally {
      for (const k of ['applied', 'resyncs', 'crashes'] as const) totals[k] += sim.stats[k]
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** 400 steps of writes and faults, then no writes until caught up; what went wrong, or null. */
async function drive(sim: ReplicaSim, dir: string): Promise<string | null> {
  for (let i = 0; i < 400 && !sim.problem; i++) await sim.step(6)
  // the writes stop; within a few cycles the replica has everything
  for (let i = 0; i < 200 && !sim.problem && Buffer.compare(sim.replicaDisk(), sim.primary) !== 0; i++) await sim.step(0)
  if (sim.problem) return sim.problem
  if (Buffer.compare(sim.replicaDisk(), sim.primary) !== 0) return 'the replica did not catch up once the writes stopped'
  if (Buffer.compare(diskOf(await ReplicaStore.open(dir, G)), sim.primary) !== 0) return 'the caught-up replica is not what its store holds'
  if (sim.stats.applied === 0) return 'no cycle was ever applied'
  return null
}

const s = seeds(import.meta.url, { base: 20261206, count: 12 })

t.test('crash-consistent at every step and caught up at the end, through failed sends, lost answers and crashes', async (t) => {
  const chances = { send_fails: 0.1, answer_lost: 0.1, replica_crash: 0.01, crash_mid_persist: 0.05 }
  const { runs, failures } = await forEachSeed(t, s, (seed) => runSeed(seed, chances))
  t.equal(failures, 0, `${runs} seeds`)
  t.ok(totals.applied > 0 && totals.crashes > 0, `cycles applied and replica crashes came: ${JSON.stringify(totals)}`)
  if (!s.fromEnv) t.ok(totals.resyncs > 0, 'and resyncs (a log over half the disk while shipments failed)')
})

t.test('a clean link and a replica that never crashes apply every cycle in order', async (t) => {
  const chances = { send_fails: 0, answer_lost: 0, replica_crash: 0, crash_mid_persist: 0 }
  const { failures } = await forEachSeed(t, seeds(import.meta.url, [7]), (seed) => runSeed(seed, chances))
  t.equal(failures, 0)
})
