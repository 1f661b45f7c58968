/**
 * The lab runtime's own events: the controller's (lab, process, network, controller
 * errors) and every process shell's peer links (shared/lab-process.ts).
 */
import { z } from 'zod'
import { defineEvents, detail } from './details.js'

export const labEvents = defineEvents({
  'lab.started': { topology: detail.name(), dir: detail.text(), processes: detail.uint() },
  'lab.stopping': {},
  'lab.stopped': {},
  /** The controller's error policy gives up: too many unexpected errors (error-policy.ts). */
  'lab.aborting': { reason: detail.text() },
  'controller.error': { origin: detail.word(), error: detail.text() },
})

const exit = {
  process: detail.name(),
  pid: detail.uint().nullable(),
  code: z.number().int().nullable(),
  signal: detail.word().nullable(),
  requested: detail.flag(),
  lastLogLines: z.array(detail.text()).max(64),
}

export const processEvents = defineEvents({
  'process.started': { process: detail.name(), role: detail.word(), site: detail.name(), pid: detail.uint().nullable() },
  'process.up': { process: detail.name(), pid: detail.uint(), peerPort: detail.uint(), metricsPort: detail.uint() },
  'process.signalled': { process: detail.name(), signal: detail.word() },
  'process.exited': exit,
  'process.crashed': exit,
})

export const networkEvents = defineEvents({
  /** `one_way`: only what `a` sends `b` is lost. */
  'network.partitioned': { a: detail.names(), b: detail.names(), one_way: detail.flag() },
  /** Every direction from a process of `a` to one of `b` (and back unless `one_way`) shaped so from now on. */
  'network.link-set': {
    a: detail.names(),
    b: detail.names(),
    one_way: detail.flag(),
    latency_ms: detail.number(),
    jitter_ms: detail.number(),
    mbit: detail.number(),
    loss: detail.number(),
  },
  /** Every connection between a process of `a` and one of `b` cut at once (`hvlab link reset`); they dial again. */
  'network.reset': { a: detail.names(), b: detail.names() },
  'network.healed': { partitionsRemoved: detail.uint(), linksCleared: detail.uint() },
})

export const clockEvents = defineEvents({
  /** The lab set a process's clock skew (`hvlab clock set`): it reads `offset_ms` ahead and gains `drift` per ms. */
  'clock.set': { process: detail.name(), offset_ms: detail.number(), drift: detail.number() },
})

/** The lab's virtual switch (scripts/controller/virtual-switch.ts), as its clients saw it. */
export const switchEvents = defineEvents({
  /**
   * A VM's replies came from another host: its last reply from `from` and first from `to`
   * (wall-clock ms, as the controller read them), the gap every client saw at most, and when
   * `to` announced it and how many pings awaiting `from` went to `to` then.
   */
  'switch.vm-moved': {
    vm: detail.name(),
    from: detail.name(),
    to: detail.name(),
    last_reply_at_ms: detail.number(),
    first_reply_at_ms: detail.number(),
    gap_ms: detail.number(),
    announced_at_ms: detail.number().nullable(),
    released_pings: detail.uint(),
  },
})

export const peerEvents = defineEvents({
  'peer.connected': { peer: detail.name() },
  'peer.lost': { peer: detail.name(), reason: detail.text() },
})
