/**
 * The lab's link faults (issue 13), per direction between two processes: latency, jitter,
 * a bandwidth cap, loss (shared/transport/link-shaper.ts) and one-way cuts. The controller
 * keeps the table and tells each process what concerns it (`faultsFor`): the shaping of
 * what it sends each peer, the peers it does not hear (a cut towards it), and the peers
 * with which no new connection can be made (a cut either way). Both-way partitions stay
 * the controller's partition list: they cut the connections at once.
 *
 * Under the faults lies the topology's network (`network.lan` within a site, `network.wan`
 * between sites): the shaping of every direction that has no fault of its own, and what
 * `clear()` (`hvlab heal`) returns to.
 */
import { HvlabError } from '../../shared/errors.js'
import { LINK_LATENCY_MS_MAX, LINK_LOSS_MAX, LINK_MBIT_MAX } from '../../shared/fault-limits.js'
import type { linkFaultSchema } from '../../shared/protocol/runtime-messages.js'
import type { z } from 'zod'
import { processesOf, type Topology } from '../../shared/topology.js'

export type LinkFaultWire = z.infer<typeof linkFaultSchema>

/** One direction's shaping; all zero: a clear link. */
export interface LinkShaping {
  latency_ms: number
  jitter_ms: number
  mbit: number
  loss: number
}

/** One direction of a link with a fault, as `hvlab link show` lists it. */
export interface LinkRow extends LinkShaping {
  from: string
  to: string
  /** Nothing sent this way arrives (a one-way partition). */
  cut: boolean
}

const CLEAR: LinkShaping = { latency_ms: 0, jitter_ms: 0, mbit: 0, loss: 0 }
const key = (from: string, to: string): string => `${from}>${to}`

export class LinkTable {
  private readonly rows = new Map<string, LinkRow>()

  /** `baseline`: the shaping of a direction without a fault of its own (the topology's network). */
  constructor(private readonly baseline: (from: string, to: string) => LinkShaping = () => CLEAR) {}

  /** Shapes every direction from a process of `from` to one of `to` (replacing what it had). */
  shape(from: readonly string[], to: readonly string[], shaping: LinkShaping): void {
    checkShaping(shaping)
    for (const [f, t] of pairs(from, to)) this.put({ ...this.row(f, t), ...shaping })
  }

  /** Cuts every direction from a process of `from` to one of `to` (a one-way partition). */
  cut(from: readonly string[], to: readonly string[]): void {
    for (const [f, t] of pairs(from, to)) this.put({ ...this.row(f, t), cut: true })
  }

  /** Every link clear again. */
  clear(): void {
    this.rows.clear()
  }

  list(): LinkRow[] {
    return [...this.rows.values()].sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
  }

  /** What process `name` applies towards each of `peers`: an entry for each link that is not clear. */
  faultsFor(name: string, peers: readonly string[]): LinkFaultWire[] {
    const out: LinkFaultWire[] = []
    for (const peer of [...peers].sort()) {
      const there = this.row(name, peer)
      const back = this.row(peer, name)
      const { latency_ms, jitter_ms, mbit, loss } = there
      const f = { peer, latency_ms, jitter_ms, mbit, loss, deaf: back.cut, no_new_connections: there.cut || back.cut }
      if (!isClear(f) || f.deaf || f.no_new_connections) out.push(f)
    }
    return out
  }

  /** A direction's fault, or the topology's network under it. */
  private row(from: string, to: string): LinkRow {
    return this.rows.get(key(from, to)) ?? { from, to, ...this.baseline(from, to), cut: false }
  }

  /** A row the same as the network under it is no fault: it is dropped. */
  private put(r: LinkRow): void {
    const base = this.baseline(r.from, r.to)
    const same = !r.cut && (['latency_ms', 'jitter_ms', 'mbit', 'loss'] as const).every((k) => r[k] === base[k])
    if (same) this.rows.delete(key(r.from, r.to))
    else this.rows.set(key(r.from, r.to), r)
  }
}

const isClear = (s: LinkShaping): boolean => s.latency_ms === 0 && s.jitter_ms === 0 && s.mbit === 0 && s.loss === 0

/** The topology's network as a baseline: `lan` between two processes of one site, `wan` between sites. */
export function topologyNetwork(topology: Topology): (from: string, to: string) => LinkShaping {
  const site = new Map(processesOf(topology).map((p) => [p.name, p.site]))
  const { lan, wan } = topology.network
  return (from, to) => (site.get(from) === site.get(to) ? lan : wan) ?? CLEAR
}

function* pairs(from: readonly string[], to: readonly string[]): Generator<[string, string]> {
  for (const f of from) for (const t of to) if (f !== t) yield [f, t]
}

function checkShaping(s: LinkShaping): void {
  const bad = (what: string, max: number, v: number): never => {
    throw new HvlabError('HVLAB_E_USAGE', `${what} must be a number from 0 to ${max}, got ${v}`)
  }
  const within = (v: number, max: number): boolean => Number.isFinite(v) && v >= 0 && v <= max
  if (!within(s.latency_ms, LINK_LATENCY_MS_MAX)) bad('--latency-ms', LINK_LATENCY_MS_MAX, s.latency_ms)
  if (!within(s.jitter_ms, LINK_LATENCY_MS_MAX)) bad('--jitter-ms', LINK_LATENCY_MS_MAX, s.jitter_ms)
  if (!within(s.mbit, LINK_MBIT_MAX)) bad('--mbit', LINK_MBIT_MAX, s.mbit)
  if (!within(s.loss, LINK_LOSS_MAX)) bad('--loss', LINK_LOSS_MAX, s.loss)
}
