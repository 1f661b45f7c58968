/**
 * The in-doubt settlement (agent/migration/in-doubt-settlement.ts) in a seeded simulation
 * of the two hosts of a migration and the cluster around them. The source's copy of the VM
 * is paused and its machine asks; the destination holds the VM prepared or already
 * running; the link between them and each host's place in the cluster view fail and heal
 * at random. The source's shell is modelled as in-doubt-shell.ts drives the machine, through
 * the same MachineDriver (with synchronous handlers): an ask goes out only on an open
 * connection, a request fails on its timeout or when the connection closes, and the
 * source's view (the destination's membership, the epoch, its own lease) is read just
 * before a failed ask is stepped.
 *
 * What production does, modelled here:
 *   - a connection that closes discards a prepared (not yet resumed) VM on the destination
 *     (migration-destination.ts `link-lost`); a resume sent before a question on the same
 *     connection arrives before it (one connection per peer, in order);
 *   - a host without a quorum lease for `no_quorum_grace_ms` stops its VMs, the paused
 *     source copy too (vm-agent.ts checkLease); a host leaves the view no sooner than its
 *     lease end plus the clock skew; a host back in the view holds a lease again;
 *   - a killed host loses its VMs; a restarted host comes back with none (VMs live in the
 *     process), so a restarted source has lost its paused copy and its settlement;
 *   - the view: a host cut off keeps the last view it held a lease in (stale); the epoch
 *     grows at every change;
 *   - the cluster: the source's report moves the role (ok: to the destination); a role whose
 *     owner has been out of the view for `roles_free_after_ms`, or whose owner is in the view
 *     without the VM, is restarted by policy on a member (the other host first). A role lost
 *     mid-migration is first asked of the destination, or the destination waited out.
 *     Production's role controller does the same (lostWithNode): it fails such a role over to
 *     the destination (a start there keeps a VM that runs), and while the destination stays
 *     in the cluster without taking it (no lease) starts it nowhere else. The last test shows
 *     what restarting it blind, as production did before, does.
 *
 * After every step: never two running copies (a copy runs from the moment the machine's
 * `resume` reaches a paused copy, the destination resumes it, or the cluster starts it,
 * until it is released, stopped or its host dies). Counted from the hosts' copies, never
 * from the machine. Once faults stop (every link and host healed, a killed host restarted
 * or left dead): exactly one copy runs, or none when no host is left.
 *
 * A failing seed prints its schedule and the rerun command (HVLAB_SEED, see seed.ts).
 */
import t from 'tap'
import { InDoubtSettlement, type InDoubtEffect, type InDoubtInput } from '../../agent/migration/in-doubt-settlement.js'
import { MachineDriver } from '../../shared/machine/driver.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { forEachSeed, seeds } from './seed.js'

const VM = 'web1'
const OP = 7
const ASK_INTERVAL_MS = 1000
const ASK_TIMEOUT_MS = 2000
const LEASE_MS = 600
const CLOCK_SKEW_MS = 50
const ROLES_STOP_BOUND_MS = 3000
const NO_QUORUM_GRACE_MS = 2000
const ROLES_FREE_AFTER_MS = CLOCK_SKEW_MS + ROLES_STOP_BOUND_MS
const CLUSTER_TICK_MS = 500
const FAULTS_FOR_MS = 30_000
const SETTLE_WITHIN_MS = 60_000

type HostName = 'source' | 'destination'
type Copy = 'none' | 'paused' | 'prepared' | 'running'

interface Host {
  readonly name: HostName
  up: boolean
  /** Counts restarts: a message or timer of an older incarnation is dropped. */
  incarnation: number
  copy: Copy
  /** The op the running copy was started as (the migration's, or a cluster restart's). */
  copy_op: number
  /** Cut off from the cluster (the majority and the witness). */
  cut: boolean
  in_view: boolean
  /** When it left the view (for roles_free_after_ms). */
  left_view_ms: number | null
  /** Holds a quorum lease (up, in the view, not cut); counts lease changes for the grace check. */
  lease: boolean
  lease_seq: number
}

interface Event {
  at_ms: number
  seq: number
  run: () => void
}

/** The cluster's record of the role (the coordinator's, which stays up). */
interface Role {
  owner: HostName | null
  migrating: boolean
  /** The source's report of how the migration ended, waiting to reach the coordinator. */
  report: boolean | null
  op_seq: number
}

/** Variants that model what production did or does elsewhere, to show the checks catch it. */
interface Variant {
  /** The settlement sees no view epochs and always a lease (the rule before it counted within one epoch). */
  view_blind?: boolean
  /** The cluster restarts a role whose source was lost mid-migration without asking the destination (role-controller.ts lostWithNode before it preferred the destination). */
  cluster_restarts_blind?: boolean
}

class World {
  now_ms = 0
  steps = 0
  problem: string | null = null
  readonly trace: string[] = []
  readonly rng: () => number
  private seq = 0
  private queue: Event[] = []
  readonly hosts: Record<HostName, Host>
  /** The connection between the two hosts: its number changes when it closes (messages on an older one are lost). */
  link = { cut: false, conn: 0, s_to_d_at_ms: 0, d_to_s_at_ms: 0 }
  reply_loss = 0
  delay_spike = 0
  readonly role: Role = { owner: 'source', migrating: true, report: null, op_seq: OP }
  machine: InDoubtSettlement | null
  /** Drives `machine` (as long as it is not lost with a restart). */
  readonly driver: MachineDriver<InDoubtInput, InDoubtEffect>
  /** The question the source's shell is waiting on: its number and connection. */
  pending: { ask: number; conn: number } | null = null
  /** The cluster's view: its epoch grows at every change. */
  view_epoch = 1
  /** The source's own view: the epoch and the destination's membership (it learns views only while it holds a lease). */
  source_view = { epoch: 1, destination: true }

  constructor(
    seed: number,
    readonly variant: Variant = {},
  ) {
    this.rng = mulberry32(seed)
    const host = (name: HostName, copy: Copy): Host => ({
      name,
      up: true,
      incarnation: 0,
      copy,
      copy_op: OP,
      cut: false,
      in_view: true,
      left_view_ms: null,
      lease: true,
      lease_seq: 0,
    })
    this.hosts = { source: host('source', 'paused'), destination: host('destination', 'prepared') }
    this.machine = newMachine()
    this.driver = sourceDriver(this, this.machine)
  }

  log(line: string): void {
    this.trace.push(`${this.now_ms.toFixed(0)} ${line}`)
  }

  at(delay_ms: number, run: () => void): void {
    this.queue.push({ at_ms: this.now_ms + Math.max(0, delay_ms), seq: this.seq++, run })
  }

  /** Runs events until `until_ms`, checking after each one; returns the problem found, if any. */
  runUntil(until_ms: number): string | null {
    for (;;) {
      let best = -1
      for (let i = 0; i < this.queue.length; i++) {
        const e = this.queue[i]!
        const b = this.queue[best]
        if (e.at_ms <= until_ms && (b === undefined || e.at_ms < b.at_ms || (e.at_ms === b.at_ms && e.seq < b.seq))) best = i
      }
      if (best < 0) break
      const e = this.queue.splice(best, 1)[0]!
      this.now_ms = e.at_ms
      e.run()
      this.steps++
      this.check()
      if (this.problem !== null) return this.problem
    }
    this.now_ms = until_ms
    return null
  }

  private check(): void {
    const running = Object.values(this.hosts).filter((h) => h.up && h.copy === 'running')
    if (running.length > 1 && this.problem === null) {
      this.problem = `vm ${VM} runs twice at ${this.now_ms.toFixed(0)} ms: on ${running.map((h) => `${h.name} (op ${h.copy_op})`).join(' and ')}`
    }
  }

  /** A message's delay: usually short, sometimes a spike. */
  delay(): number {
    return this.rng() < this.delay_spike ? 200 + this.rng() * 3000 : 1 + this.rng() * 30
  }

  connectionOpen(): boolean {
    return !this.link.cut && this.hosts.source.up && this.hosts.destination.up
  }
}

function newMachine(): InDoubtSettlement {
  return new InDoubtSettlement({
    host: 'source',
    vm: VM,
    destination: 'destination',
    op: OP,
    ask_interval_ms: ASK_INTERVAL_MS,
    ask_timeout_ms: ASK_TIMEOUT_MS,
    roles_free_after_ms: ROLES_FREE_AFTER_MS,
  })
}

// ---- the link between the hosts -----------------------------------------------------------

/** The connection closes: what is in flight on it is lost; the destination discards a prepared VM; the source's question fails. */
function closeConnection(w: World, why: string): void {
  w.link.conn++
  w.log(`connection closed (${why})`)
  const d = w.hosts.destination
  if (d.up && d.copy === 'prepared') {
    d.copy = 'none'
    w.log('destination discards the prepared vm (link-lost)')
  }
  const pending = w.pending
  if (pending !== null) {
    w.pending = null
    const inc = w.hosts.source.incarnation
    w.at(0, () => inc === w.hosts.source.incarnation && unanswered(w, pending.ask))
  }
}

/** Sends on the open connection, in order after what was sent before on it in that direction. */
function send(w: World, to: HostName, deliver: () => void, lose = false): void {
  const conn = w.link.conn
  const key = to === 'destination' ? 's_to_d_at_ms' : 'd_to_s_at_ms'
  const at_ms = Math.max(w.link[key], w.now_ms + w.delay())
  w.link[key] = at_ms
  if (lose) return
  w.at(at_ms - w.now_ms, () => {
    if (w.link.conn === conn && w.connectionOpen()) deliver()
  })
}

/** The destination resumes the VM (the migration's `migration-resume`). */
function deliverResume(w: World): void {
  const d = w.hosts.destination
  if (d.copy !== 'prepared') return
  d.copy = 'running'
  d.copy_op = OP
  w.log('destination resumes the vm')
}

/** The destination answers the source's question with its inventory (`vm-inventory-request`). */
function deliverQuestion(w: World, ask: number): void {
  const d = w.hosts.destination
  const vms = d.copy === 'running' ? [{ role: VM, op: d.copy_op }] : []
  w.log(`destination answers question ${ask}: ${vms.length > 0 ? `runs op ${d.copy_op}` : 'does not run it'}`)
  const lost = w.rng() < w.reply_loss
  if (lost) w.log(`the answer to question ${ask} is lost`)
  send(w, 'source', () => answered(w, ask, vms), lost)
}

// ---- the source's shell (as in-doubt-shell.ts: the machine through a MachineDriver) ----------

/** The source's driver: synchronous handlers, so each input's effects are carried out inside `feed`. */
function sourceDriver(w: World, machine: InDoubtSettlement): MachineDriver<InDoubtInput, InDoubtEffect> {
  const s = w.hosts.source
  return new MachineDriver<InDoubtInput, InDoubtEffect>({
    step: (input) => machine.step(input, w.now_ms),
    handlers: {
      ask: (e) => {
        const inc = s.incarnation
        w.at(0, () => inc === s.incarnation && ask(w, e.ask, e.timeout_ms))
      },
      'set-timer': (e) => {
        const inc = s.incarnation
        w.at(e.at_ms - w.now_ms, () => inc === s.incarnation && step(w, { kind: 'timer' }))
      },
      emit: (e) =>
        w.log(`source: ${e.event.kind} runs_on=${e.event.details.runs_on}${e.event.details.reason ? ` (${e.event.details.reason})` : ''}`),
      release: () => {
        if (s.copy === 'paused') s.copy = 'none'
        w.role.report = true
        w.log('source releases its copy')
      },
      resume: () => {
        if (s.copy === 'paused') s.copy = 'running'
        s.copy_op = OP
        w.role.report = false
        w.log(`source resumes its copy (${s.copy === 'running' ? 'it runs' : 'it was stopped already'})`)
      },
    },
  })
}

function step(w: World, input: InDoubtInput): void {
  if (w.machine === null || !w.hosts.source.up) return
  w.driver.feed(input)
}

function ask(w: World, ask: number, timeout_ms: number): void {
  if (!w.connectionOpen()) return unanswered(w, ask)
  w.pending = { ask, conn: w.link.conn }
  w.log(`source asks question ${ask}`)
  send(w, 'destination', () => deliverQuestion(w, ask))
  const inc = w.hosts.source.incarnation
  w.at(timeout_ms, () => {
    if (inc !== w.hosts.source.incarnation || w.pending?.ask !== ask) return
    w.pending = null
    w.log(`question ${ask} timed out`)
    unanswered(w, ask)
  })
}

function answered(w: World, ask: number, vms: { role: string; op: number }[]): void {
  if (w.pending?.ask !== ask) return // the request already failed: the transport drops a late answer
  w.pending = null
  step(w, { kind: 'inventory', ask, vms })
}

function unanswered(w: World, ask: number): void {
  const view = w.source_view
  const blind = w.variant.view_blind === true
  step(w, { kind: 'membership', member: view.destination, epoch: blind ? 0 : view.epoch, leased: blind || w.hosts.source.lease })
  step(w, { kind: 'ask-failed', ask })
}

// ---- membership, leases and the cluster ---------------------------------------------------

/** The host loses its lease now (cut off or dead): it leaves the view after its lease end plus the skew, and stops its vms after the grace. */
function loseLease(w: World, h: Host): void {
  if (!h.lease) return
  h.lease = false
  const seq = ++h.lease_seq
  const lease_end_ms = w.now_ms + w.rng() * LEASE_MS
  const detect_ms = 300 + w.rng() * 1500
  w.at(Math.max(detect_ms, lease_end_ms + CLOCK_SKEW_MS - w.now_ms), () => {
    if (h.lease_seq !== seq || !h.in_view) return
    h.in_view = false
    h.left_view_ms = w.now_ms
    w.view_epoch++
    w.log(`view ${w.view_epoch}: ${h.name} leaves`)
    observeView(w)
  })
  const inc = h.incarnation
  w.at(lease_end_ms + NO_QUORUM_GRACE_MS - w.now_ms, () => {
    if (h.lease_seq !== seq || h.incarnation !== inc || !h.up || h.copy === 'none') return
    w.log(`${h.name} stops its vm (no quorum lease for the grace)`)
    h.copy = 'none'
  })
}

/** The host may rejoin: after a view change it is a member with a lease (then `joined`). */
function rejoin(w: World, h: Host, joined?: () => void): void {
  const seq = h.lease_seq
  w.at(100 + w.rng() * 1400, () => {
    if (h.lease_seq !== seq || !h.up || h.cut || h.lease) return
    joined?.()
    h.lease = true
    h.lease_seq++
    if (!h.in_view) w.log(`view ${++w.view_epoch}: ${h.name} joins`)
    h.in_view = true
    h.left_view_ms = null
    observeView(w)
  })
}

/** The source learns the current view while it holds a lease (a host cut off keeps its stale one). */
function observeView(w: World): void {
  if (w.hosts.source.lease) w.source_view = { epoch: w.view_epoch, destination: w.hosts.destination.in_view }
}

/** The coordinator's periodic work: reports, lost owners, restarts by policy. */
function clusterTick(w: World): void {
  w.at(CLUSTER_TICK_MS, () => clusterTick(w))
  const s = w.hosts.source
  const role = w.role
  if (role.migrating && role.report !== null && s.up && s.in_view && !s.cut) {
    role.owner = role.report ? 'destination' : 'source'
    role.migrating = false
    w.log(`cluster: the source reports the migration ${role.report ? 'completed' : 'failed'}; owner ${role.owner}`)
  }
  const owner = role.owner === null ? null : w.hosts[role.owner]
  if (owner === null) return restartByPolicy(w, null)
  const freed = (h: Host): boolean => !h.in_view && h.left_view_ms !== null && w.now_ms - h.left_view_ms >= ROLES_FREE_AFTER_MS
  // Production's role controller leaves a migrating role alone when its owner's inventory lacks it (so: the blind variant).
  const missing = owner.lease && owner.copy === 'none' && (!role.migrating || (s.incarnation > 0 && !w.variant.cluster_restarts_blind))
  if (!freed(owner) && !missing) return
  if (role.migrating) {
    // The source lost the vm mid-migration: the destination may run it. Ask it; one that does not answer is waited out.
    const d = w.hosts.destination
    if (!d.lease && !freed(d) && !w.variant.cluster_restarts_blind) return
    role.migrating = false
    if (d.lease && d.copy === 'running' && d.copy_op === OP && !w.variant.cluster_restarts_blind) {
      role.owner = 'destination'
      return w.log('cluster: the source lost the vm mid-migration; the destination runs it: owner destination')
    }
  }
  restartByPolicy(w, owner.name)
}

/** Starts the VM on a member (not `lost` first), once no copy of it can run elsewhere. */
function restartByPolicy(w: World, lost: HostName | null): void {
  const role = w.role
  role.owner = null
  const members = (['source', 'destination'] as const).map((n) => w.hosts[n]).filter((h) => h.lease)
  const target = members.find((h) => h.name !== lost) ?? members[0]
  if (target === undefined) return
  role.owner = target.name
  target.copy = 'running'
  target.copy_op = ++role.op_seq
  w.log(`cluster: restarts the vm on ${target.name} as op ${target.copy_op}`)
}

// ---- faults ---------------------------------------------------------------------------

function kill(w: World, h: Host): void {
  if (!h.up) return
  const open = w.connectionOpen()
  h.up = false
  h.copy = 'none'
  if (h.name === 'source') {
    w.machine = null
    w.pending = null
  }
  if (open) closeConnection(w, `${h.name} died`)
  loseLease(w, h)
}

/** The host's process starts again: no VMs (they lived in the old process), no settlement; it rejoins the view. */
function start(w: World, h: Host): void {
  if (h.up) return
  h.up = true
  h.incarnation++
  h.copy = 'none'
  rejoin(w, h)
}

function cutFromCluster(w: World, h: Host): void {
  if (h.cut) return
  h.cut = true
  loseLease(w, h)
}

function healToCluster(w: World, h: Host, joined?: () => void): void {
  h.cut = false
  rejoin(w, h, joined)
}

type Fault = (w: World) => string

/** A flap of the destination that a source cut off for a moment does not see (it keeps a stale view meanwhile). */
function staleFlap(w: World): string {
  // Once the destination has left the view, the source is cut off for less than its grace (its view goes stale),
  // and meanwhile the destination is back in the view (within its own grace, keeping its vms) and out again.
  const s = w.hosts.source
  const d = w.hosts.destination
  const flap_ms = 900 + w.rng() * 600
  const back_ms = 300 + w.rng() * 1500
  cutFromCluster(w, d)
  const once_out = (): void => {
    if (d.in_view) return w.at(50, once_out)
    w.at(flap_ms, () => {
      cutFromCluster(w, s)
      healToCluster(w, d, () => w.at(50 + w.rng() * 900, () => cutFromCluster(w, d)))
      w.at(back_ms, () => healToCluster(w, s))
    })
  }
  once_out()
  return `destination flaps; the source cut off ${flap_ms.toFixed(0)} ms after it left, for ${back_ms.toFixed(0)} ms`
}

const FAULTS: Fault[] = [
  (w) => {
    if (w.link.cut) return 'link already cut'
    const open = w.connectionOpen()
    w.link.cut = true
    if (open) closeConnection(w, 'link cut')
    return 'cut the link'
  },
  (w) => ((w.link.cut = false), 'heal the link'),
  (w) => (kill(w, w.hosts.destination), 'kill the destination'),
  (w) => {
    const d = w.hosts.destination
    kill(w, d)
    w.at(w.rng() * 3000, () => start(w, d))
    return 'restart the destination'
  },
  (w) => {
    const s = w.hosts.source
    if (w.rng() < 0.6) return 'no restart of the source this time'
    kill(w, s)
    w.at(w.rng() * 3000, () => start(w, s))
    return 'restart the source'
  },
  (w) => (cutFromCluster(w, w.hosts.destination), 'cut the destination from the cluster'),
  (w) => (healToCluster(w, w.hosts.destination), 'heal the destination to the cluster'),
  (w) => (cutFromCluster(w, w.hosts.source), 'cut the source from the cluster'),
  (w) => (healToCluster(w, w.hosts.source), 'heal the source to the cluster'),
  (w) => {
    // The destination drops out of the cluster, is back in the view within its grace (it keeps its vms), and out again soon after.
    const d = w.hosts.destination
    cutFromCluster(w, d)
    const back_ms = 500 + w.rng() * 1500
    const in_view_ms = 50 + w.rng() * 900
    w.at(back_ms, () => healToCluster(w, d, () => w.at(in_view_ms, () => cutFromCluster(w, d))))
    return `destination flaps: out, healed after ${back_ms.toFixed(0)} ms, out again ${in_view_ms.toFixed(0)} ms after it joined`
  },
  staleFlap,
  (w) => ((w.reply_loss = [0, 0.3, 0.9][Math.floor(w.rng() * 3)]!), `replies lost with p=${w.reply_loss}`),
  (w) => ((w.delay_spike = [0, 0.1, 0.5][Math.floor(w.rng() * 3)]!), `delay spikes with p=${w.delay_spike}`),
]

const BEGINNINGS: { label: string; begin: (w: World) => void }[] = [
  {
    label: 'the resume was lost with the link',
    begin: (w) => ((w.link.cut = true), closeConnection(w, 'link cut during the resume')),
  },
  {
    label: 'the destination resumed, then the link went',
    begin: (w) => (deliverResume(w), (w.link.cut = true), closeConnection(w, 'link cut during the resume')),
  },
  {
    label: 'the resume request timed out, the resume still in flight',
    begin: (w) => ((w.delay_spike = 1), send(w, 'destination', () => deliverResume(w)), (w.delay_spike = 0)),
  },
  {
    label: 'the destination resumed, its answer timed out',
    begin: (w) => deliverResume(w),
  },
]

// ---- one seeded run -----------------------------------------------------------------

interface RunResult {
  problem: string | null
  schedule: string[]
  trace: string[]
  steps: number
  /** How it settled: where the vm runs at the end, and whether the machine decided. */
  ending: string
}

function endingOf(w: World): string {
  const runs = Object.values(w.hosts).filter((h) => h.up && h.copy === 'running')
  const machine = w.machine === null ? 'lost with a restart' : w.machine.stage
  return `${runs.map((h) => h.name).join(',') || 'nowhere'}; machine ${machine}`
}

function runSeed(seed: number, variant: Variant = {}): RunResult {
  const w = new World(seed, variant)
  const beginning = BEGINNINGS[seed % BEGINNINGS.length]!
  const schedule = [beginning.label]
  const result = (problem: string | null): RunResult => ({ problem, schedule, trace: w.trace, steps: w.steps, ending: endingOf(w) })
  beginning.begin(w)
  w.at(0, () => step(w, { kind: 'start' }))
  w.at(CLUSTER_TICK_MS, () => clusterTick(w))
  let at_ms = 0
  if (seed % 3 === 0) {
    // A third of the runs begin with the schedule that broke the rule before it counted within one view epoch.
    at_ms = w.rng() * 2000
    w.runUntil(at_ms)
    schedule.push(`${at_ms.toFixed(0)} ms: ${staleFlap(w)}`)
  }
  for (;;) {
    at_ms += 100 + w.rng() * 3000
    if (at_ms >= FAULTS_FOR_MS) break
    if (w.runUntil(at_ms) !== null) return result(w.problem)
    const fault = FAULTS[Math.floor(w.rng() * FAULTS.length)]!
    schedule.push(`${at_ms.toFixed(0)} ms: ${fault(w)}`)
  }
  if (w.runUntil(FAULTS_FOR_MS) !== null) return result(w.problem)
  // Faults stop: the link and the cluster heal, a dead host starts again (or, sometimes, stays dead).
  w.link.cut = false
  w.reply_loss = 0
  w.delay_spike = 0
  const stays_dead = w.rng() < 0.2
  for (const h of Object.values(w.hosts)) {
    healToCluster(w, h)
    if (!stays_dead) start(w, h)
  }
  schedule.push(`${FAULTS_FOR_MS} ms: faults stop${stays_dead ? ' (dead hosts stay dead)' : ''}`)
  if (w.runUntil(FAULTS_FOR_MS + SETTLE_WITHIN_MS) !== null) return result(w.problem)
  const running = Object.values(w.hosts).filter((h) => h.up && h.copy === 'running').length
  const alive = Object.values(w.hosts).filter((h) => h.up).length
  const want = alive === 0 ? 0 : 1
  if (running !== want)
    return result(`${SETTLE_WITHIN_MS / 1000} s after faults stopped, ${running} copies run (${alive} hosts up); want ${want}`)
  return result(null)
}

const SEEDS = seeds(import.meta.url, { base: 1, count: 2000 })

t.test('seeded schedules: never two running copies; after faults stop, exactly one', async (t) => {
  let steps = 0
  const endings = new Map<string, number>()
  const { runs, failures } = await forEachSeed(t, SEEDS, (seed) => {
    const r = runSeed(seed)
    steps += r.steps
    endings.set(r.ending, (endings.get(r.ending) ?? 0) + 1)
    return { problem: r.problem, report: `schedule:\n  ${r.schedule.join('\n  ')}\nlast events:\n  ${r.trace.slice(-40).join('\n  ')}` }
  })
  t.equal(failures, 0, `${runs} seeds, ${steps} steps checked`)
  t.comment(
    [...endings]
      .sort((a, b) => b[1] - a[1])
      .map(([e, n]) => `${n} × ${e}`)
      .join('\n'),
  )
  if (!SEEDS.fromEnv) {
    const ended = (stage: string): number => [...endings].filter(([e]) => e.endsWith(`machine ${stage}`)).reduce((a, [, n]) => a + n, 0)
    t.ok(ended('released') > 0 && ended('resumed') > 0, 'the machine settled both ways')
    t.ok(ended('lost with a restart') > 0, 'and restarts lost it')
  }
})

t.test('the checks catch the rule before the fix: an absence counted across views resumes a second copy', async (t) => {
  // The destination dropped out, came back within its grace (keeping the vm) while the source,
  // cut off, saw neither, and dropped out again: the old count ran on from the first absence.
  const seed = 3085
  t.match(runSeed(seed, { view_blind: true }).problem, /^vm web1 runs twice at \d+ ms: on source \(op 7\) and destination \(op 7\)/)
  t.equal(runSeed(seed).problem, null, 'counted within one view epoch and with a lease, the same schedule is safe')
})

t.test('the checks catch a cluster that restarts a vm lost mid-migration without asking the destination', async (t) => {
  // What role-controller.ts lostWithNode did before it preferred the destination, when a migrating role's owner is lost: the
  // destination may run the vm already. Here the modelled cluster asks it first (or waits it out).
  const seed = 4066
  t.match(
    runSeed(seed, { cluster_restarts_blind: true }).problem,
    /^vm web1 runs twice at \d+ ms: on source \(op 8\) and destination \(op 7\)/,
  )
  t.equal(runSeed(seed).problem, null)
})
