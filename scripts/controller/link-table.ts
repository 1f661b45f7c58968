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
import { checkFaultOption, LINK_LATENCY_MS_MAX, LINK_LOSS_MAX, LINK_MBIT_MAX } from '../../shared/fault-limits.js'
import type { linkFaultSchema } from '../../shared/protocol/runtime-messages.js'
import type { z } from 'zod'
import { processesOf, type Topology } from '../../shared/topology.js'
import { isClearShape, LINK_SHAPE_CLEAR, type LinkShape } from '../../shared/transport/link-shaper.js'

export type LinkFaultWire = z.infer<typeof linkFaultSchema>

/** One direction of a link with a fault, as `hvlab link show` lists it. */
export interface LinkRow extends LinkShape {
  from: string
  to: string
  /** Nothing sent this way arrives (a one-way partition). */
  cut: boolean
}

const key = (from: string, to: string): string => `${from}>${to}`

export class LinkTable {
  private readonly rows = new Map<string, LinkRow>()

  /** `baseline`: the shaping of a direction without a fault of its own (the topology's network). */
  constructor(private readonly baseline: (from: string, to: string) => LinkShape = () => LINK_SHAPE_CLEAR) {}

  /** Shapes every direction from a process of `from` to one of `to` (replacing what it had). */
  shape(from: readonly string[], to: readonly string[], shaping: LinkShape): void {
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
      if (!isClearShape(f) || f.deaf || f.no_new_connections) out.push(f)
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

/** The topology's network as a baseline: `lan` between two processes of one site, `wan` between sites. */
export function topologyNetwork(topology: Topology): (from: string, to: string) => LinkShape {
  const site = new Map(processesOf(topology).map((p) => [p.name, p.site]))
  const { lan, wan } = topology.network
  return (from, to) => (site.get(from) === site.get(to) ? lan : wan) ?? LINK_SHAPE_CLEAR
}

function* pairs(from: readonly string[], to: readonly string[]): Generator<[string, string]> {
  for (const f of from) for (const t of to) if (f !== t) yield [f, t]
}

function checkShaping(s: LinkShape): void {
  checkFaultOption('--latency-ms', s.latency_ms, 0, LINK_LATENCY_MS_MAX)
  checkFaultOption('--jitter-ms', s.jitter_ms, 0, LINK_LATENCY_MS_MAX)
  checkFaultOption('--mbit', s.mbit, 0, LINK_MBIT_MAX)
  checkFaultOption('--loss', s.loss, 0, LINK_LOSS_MAX)
}
