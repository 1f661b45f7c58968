/**
 * A soak's fault schedule, drawn from its seed, Jepsen style: a fault, a while, heal, a
 * quiet while (with an operator action now and then), repeat. Pure: the same seed, lab and
 * fault list give the same steps, so a failed run is reproduced by its seed. What each
 * fault does to the lab is nemesis.ts; the names are what `--faults` accepts.
 */
import { HvlabError } from '../../shared/errors.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import type { Topology } from '../../shared/topology.js'

export const FAULT_KINDS = ['kill', 'pause', 'partition', 'wan', 'clock', 'array-kill', 'witness-kill', 'disk'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

/** How long the lab's clocks may differ and its leases still hold (README: clock skew). */
export const CLOCK_OFFSET_WITHIN_TOLERANCE_MS = 80
/** Drift a clock fault may give: 0.05 % (half a millisecond a second). */
export const CLOCK_DRIFT_WITHIN_TOLERANCE = 0.0005

export type FaultPlan =
  /** kill -9 a host (healed by restarting it). */
  | { kind: 'kill'; process: string }
  /** SIGSTOP a host for longer than its lease (healed by SIGCONT): the zombie that wakes up. */
  | { kind: 'pause'; process: string }
  | { kind: 'partition'; shape: 'isolate' | 'halves' | 'bridge' | 'ring'; isolate: string | null; seed: number }
  | { kind: 'partition'; shape: 'sites'; a: string; b: string }
  /** A slow, lossy link between two sites (healed back to the topology's network). */
  | { kind: 'wan'; a: string; b: string; latency_ms: number; jitter_ms: number; mbit: number; loss: number }
  | { kind: 'clock'; process: string; offset_ms: number; drift: number }
  | { kind: 'array-kill'; process: string }
  | { kind: 'witness-kill'; process: string }
  | { kind: 'disk'; array: string; fsync_delay_ms: number | null; fsync_fails: boolean; full: boolean }

export type OperatorPlan =
  | { kind: 'live-migrate' | 'quick-move'; vm: string; to: string }
  | { kind: 'drain'; host: string }
  | { kind: 'rcopy-switchover'; vm: string }

export interface ScheduleStep {
  fault: FaultPlan
  /** How long the fault lasts before it is healed. */
  hold_ms: number
  /** How long the lab is left alone after the heal. */
  quiet_ms: number
  /** Done at the start of the quiet while; null for none. */
  action: OperatorPlan | null
}

/** What the schedule may hit. */
export interface ScheduleLab {
  sites: string[]
  /** The cluster's hosts: the targets of kill, pause, clock, isolate and operator actions; their sites those of wan and site partitions. */
  hosts: { name: string; site: string }[]
  /** The standalone host the soak uses (its Hyper-V Replica server): a target of kill, pause and isolate too, its site of wan and site partitions. */
  standalone: { name: string; site: string }[]
  arrays: string[]
  witness: string | null
  vms: string[]
}

export interface ScheduleTiming {
  hold_ms: [number, number]
  /** A paused host is held at least this long: longer than its lease. */
  pause_ms_min: number
  quiet_ms: [number, number]
  /** Share of quiet whiles that start with an operator action. */
  action_share: number
}

export const SCHEDULE_TIMING_DEFAULT: ScheduleTiming = {
  hold_ms: [4_000, 12_000],
  pause_ms_min: 4_000,
  quiet_ms: [4_000, 10_000],
  action_share: 0.5,
}

/**
 * What the schedule may hit in a lab of topology `t`. Standalone hosts are the replica
 * servers the soak replicates a VM to (soak-replica.ts): a kill, pause or isolation of one,
 * and a WAN fault or partition on its site's link, hold replication back, which the
 * checker judges (replica-check.ts). Clock faults and operator actions stay on the
 * cluster's hosts, whose leases and roles they test.
 */
export function scheduleLabOf(t: Topology, vms: readonly string[]): ScheduleLab {
  return {
    sites: t.sites.map((s) => s.name),
    hosts: t.hosts.map((h) => ({ name: h.name, site: h.site })),
    // the replica server the soak replicates to (soak-replica.ts: the first); others stand idle, not worth a fault
    standalone: t.standalone_hosts.slice(0, 1).map((h) => ({ name: h.name, site: h.site })),
    arrays: t.arrays.map((a) => a.name),
    witness: t.witness?.name ?? null,
    vms: [...vms],
  }
}

/** `--faults kill,pause,…` checked: each a known fault, at least one, none twice. */
export function parseFaultList(text: string): FaultKind[] {
  const names = text.split(',').map((s) => s.trim())
  const known = new Set<string>(FAULT_KINDS)
  const unknown = names.filter((n) => !known.has(n))
  if (unknown.length > 0 || names.length === 0)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `unknown fault ${unknown.map((n) => JSON.stringify(n)).join(', ')}; --faults takes a comma-separated list of ${FAULT_KINDS.join(', ')}`,
    )
  return [...new Set(names)] as FaultKind[]
}

/** The sites with a Hyper-V host (of the cluster or standalone), in name order: those a WAN fault or a site partition picks from. */
const hostSites = (lab: ScheduleLab): string[] => [...new Set([...lab.hosts, ...lab.standalone].map((h) => h.site))].sort()

/** The faults of `wanted` this lab can have (a witness-kill needs a witness, a wan two sites with hosts). */
export function possibleFaults(wanted: readonly FaultKind[], lab: ScheduleLab): FaultKind[] {
  return wanted.filter((k) => {
    if (k === 'witness-kill') return lab.witness !== null
    if (k === 'array-kill' || k === 'disk') return lab.arrays.length > 0
    if (k === 'wan') return hostSites(lab).length >= 2
    return lab.hosts.length > 0
  })
}

/** The schedule's steps, one at a time, for as long as the run asks. */
export class FaultSchedule {
  private readonly random: () => number
  private readonly kinds: FaultKind[]

  constructor(
    seed: number,
    wanted: readonly FaultKind[],
    private readonly lab: ScheduleLab,
    private readonly timing: ScheduleTiming = SCHEDULE_TIMING_DEFAULT,
  ) {
    this.random = mulberry32(seed)
    this.kinds = possibleFaults(wanted, lab)
    if (this.kinds.length === 0)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `none of the faults ${wanted.join(', ')} can happen in this lab (no witness, array or second site)`,
      )
  }

  next(): ScheduleStep {
    const fault = this.fault(this.pick(this.kinds))
    const hold = this.between(this.timing.hold_ms)
    return {
      fault,
      hold_ms: fault.kind === 'pause' ? Math.max(hold, this.timing.pause_ms_min) : hold,
      quiet_ms: this.between(this.timing.quiet_ms),
      action: this.random() < this.timing.action_share ? this.action() : null,
    }
  }

  private fault(kind: FaultKind): FaultPlan {
    const hosts = this.lab.hosts.map((h) => h.name)
    const anyHost = [...hosts, ...this.lab.standalone.map((h) => h.name)]
    if (kind === 'kill' || kind === 'pause') return { kind, process: this.pick(anyHost) }
    if (kind === 'array-kill') return { kind, process: this.pick(this.lab.arrays) }
    if (kind === 'witness-kill') return { kind, process: this.lab.witness! }
    if (kind === 'clock') return this.clockFault(hosts)
    if (kind === 'disk') return this.diskFault()
    if (kind === 'wan') return this.wanFault()
    return this.partitionFault(anyHost)
  }

  private partitionFault(hosts: string[]): FaultPlan {
    const shape = this.pick(['isolate', 'halves', 'bridge', 'ring', 'sites'] as const)
    const sites = hostSites(this.lab)
    if (shape === 'sites' && sites.length >= 2) {
      const [a, b] = this.pickTwo(sites)
      return { kind: 'partition', shape, a, b }
    }
    const drawn = shape === 'sites' ? 'isolate' : shape
    return { kind: 'partition', shape: drawn, isolate: drawn === 'isolate' ? this.pick(hosts) : null, seed: this.uint() }
  }

  private wanFault(): FaultPlan {
    const [a, b] = this.pickTwo(hostSites(this.lab))
    return {
      kind: 'wan',
      a,
      b,
      latency_ms: Math.round(this.between([10, 60])),
      jitter_ms: Math.round(this.between([0, 10])),
      mbit: Math.round(this.between([20, 200])),
      loss: Math.round(this.between([0, 0.02]) * 1000) / 1000,
    }
  }

  private clockFault(hosts: string[]): FaultPlan {
    const offset = Math.round(this.between([-CLOCK_OFFSET_WITHIN_TOLERANCE_MS, CLOCK_OFFSET_WITHIN_TOLERANCE_MS]))
    const drift = Math.round(this.between([-CLOCK_DRIFT_WITHIN_TOLERANCE, CLOCK_DRIFT_WITHIN_TOLERANCE]) * 1e6) / 1e6
    return { kind: 'clock', process: this.pick(hosts), offset_ms: offset, drift }
  }

  private diskFault(): FaultPlan {
    const array = this.pick(this.lab.arrays)
    const how = this.pick(['slow', 'failing', 'full'] as const)
    return {
      kind: 'disk',
      array,
      fsync_delay_ms: how === 'slow' ? Math.round(this.between([50, 400])) : null,
      fsync_fails: how === 'failing',
      full: how === 'full',
    }
  }

  private action(): OperatorPlan | null {
    if (this.lab.vms.length === 0) return null
    const kind = this.pick(['live-migrate', 'quick-move', 'drain', 'rcopy-switchover'] as const)
    const hosts = this.lab.hosts.map((h) => h.name)
    if (kind === 'drain') return { kind, host: this.pick(hosts) }
    const vm = this.pick(this.lab.vms)
    if (kind === 'rcopy-switchover') return this.lab.arrays.length >= 2 ? { kind, vm } : null
    return hosts.length >= 2 ? { kind, vm, to: this.pick(hosts) } : null
  }

  private between([lo, hi]: [number, number]): number {
    return lo + (hi - lo) * this.random()
  }

  private uint(): number {
    return Math.floor(this.random() * 2 ** 31)
  }

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!
  }

  private pickTwo<T>(items: readonly T[]): [T, T] {
    const a = Math.floor(this.random() * items.length)
    const b = (a + 1 + Math.floor(this.random() * (items.length - 1))) % items.length
    return [items[a]!, items[b]!]
  }
}

/** One line a user reads for a fault: what it hit. */
export function faultTarget(f: FaultPlan): string {
  if (f.kind === 'partition')
    return f.shape === 'sites' ? `${f.a} | ${f.b}` : f.shape === 'isolate' ? `isolate ${f.isolate}` : `${f.shape} (seed ${f.seed})`
  if (f.kind === 'wan') return `${f.a} ↔ ${f.b} ${f.latency_ms}±${f.jitter_ms} ms ${f.mbit} Mbit/s loss ${f.loss}`
  if (f.kind === 'clock') return `${f.process} offset ${f.offset_ms} ms drift ${f.drift}`
  if (f.kind === 'disk') return `${f.array} ${f.full ? 'full' : f.fsync_fails ? 'fsync fails' : `fsync +${f.fsync_delay_ms} ms`}`
  return f.process
}
