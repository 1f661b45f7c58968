/**
 * The shapes of a partition that Jepsen's nemeses made common, as lists of both-way cuts
 * between two sides (what the controller's partition list holds):
 * - `isolate`: one process cut from every other;
 * - `halves`: the processes in two halves (the larger one is a majority);
 * - `bridge`: two halves and one process in neither, which reaches both (each half plus
 *   the bridge is a majority, so two majorities overlap only in it);
 * - `ring`: each process reaches only its two neighbours in a ring (every process sees a
 *   different majority-less neighbourhood).
 * The order of the processes, which decides the halves, the bridge and the ring, is
 * shuffled by `random` (seeded by the caller when it must be reproduced).
 */
import { HvlabError } from '../../shared/errors.js'

export const PARTITION_SHAPES = ['isolate', 'halves', 'bridge', 'ring'] as const
export type PartitionShape = (typeof PARTITION_SHAPES)[number]

export interface Cut {
  a: string[]
  b: string[]
}

/** The cuts of `shape` over `processes` (`isolated` names the process of `isolate`). */
export function partitionShape(shape: PartitionShape, processes: readonly string[], random: () => number, isolated?: string): Cut[] {
  const all = [...processes].sort()
  if (shape === 'isolate') {
    if (isolated === undefined || !all.includes(isolated))
      throw new HvlabError('HVLAB_E_USAGE', `--isolate needs a process of the lab; known: ${all.join(', ')}`)
    return [{ a: [isolated], b: all.filter((p) => p !== isolated) }]
  }
  const minimum = shape === 'halves' ? 2 : 3
  if (all.length < minimum)
    throw new HvlabError('HVLAB_E_USAGE', `a ${shape} partition needs at least ${minimum} processes; the lab has ${all.length}`)
  const order = shuffled(all, random)
  if (shape === 'halves') {
    const half = Math.floor(order.length / 2)
    return [sorted({ a: order.slice(0, half), b: order.slice(half) })]
  }
  if (shape === 'bridge') {
    const rest = order.slice(1) // order[0] is the bridge: on neither side, so it reaches both
    const half = Math.floor(rest.length / 2)
    return [sorted({ a: rest.slice(0, half), b: rest.slice(half) })]
  }
  return ringCuts(order)
}

/** Each process cut from all but its two neighbours in `order` (taken as a ring). */
function ringCuts(order: readonly string[]): Cut[] {
  const n = order.length
  const cuts: Cut[] = []
  order.forEach((p, i) => {
    const near = new Set([order[(i + 1) % n]!, order[(i + n - 1) % n]!, p])
    // Each pair once: cut p from the farther processes after it in the ring's order.
    const far = order.slice(i + 1).filter((q) => !near.has(q))
    if (far.length > 0) cuts.push({ a: [p], b: [...far].sort() })
  })
  return cuts
}

function shuffled(items: readonly string[], random: () => number): string[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

const sorted = (c: Cut): Cut => ({ a: [...c.a].sort(), b: [...c.b].sort() })
