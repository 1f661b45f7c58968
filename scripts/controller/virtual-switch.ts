/**
 * The lab's virtual switch, in the controller: every VM has a stable address (its name)
 * and client frames addressed to it go to the host that runs it now.
 *
 * The table (VM → host, like a MAC table) is learned ONLY from the typed `vm-location`
 * messages hosts send on their own authenticated controller link (guest-messages.ts); the
 * host is the link's process, never a name inside the message. The timeline is for people:
 * the switch never reads it, so renaming an event cannot change routing.
 *   at: here   the VM runs on the sender now (started, or resumed there after a migration:
 *              the gratuitous ARP) — unless the table has it on another host as a newer
 *              incarnation (a higher op): a late announcement of an older one changes nothing
 *   at: gone   it stopped on the sender (stopped, or stopped for lost quorum): withdraw,
 *              if the table points at the sender
 *   (a process that exits forgets every entry pointing at it)
 * A departure changes nothing: the destination's announcement does.
 *
 * A ping for a VM the table does not know gets "no such address" at once. When a VM is
 * announced on a new host, the pings still awaiting the old host's answer (held there by
 * its paused guest during a migration's blackout) go to the new host at once, in one go —
 * not one round trip later, when the old host lets the VM go and answers not-here; the old
 * host's late answer to them is dropped (a guest that answered too skips one value, as
 * below). A ping the host answers `not-here` (the VM just left; the announcement may still be on its way) goes to
 * the VM's new host if the table already has one, else it waits — bounded in time and
 * number — for the next announcement of that VM and is forwarded then. So pings sent
 * during a migration's blackout arrive late, never lost, as with a real switch and TCP.
 * Likewise a ping whose host link dropped before the answer waits for that link to come
 * back (`hostUp`) and is sent again — the guest may then have answered twice (its value
 * skips one), the client still gets one reply. Beyond `inflight_per_host_max` pings
 * awaiting a host's replies, further ones queue (bounded) in the switch's buffer.
 *
 * What a client sees of a move: the switch notes, per VM, the host and time of its last
 * reply; the first reply from another host reports a `SwitchMove` (`onMoved`): the last
 * reply from the old host, the first from the new one, the announcement between them.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { GuestPing, GuestReply, SwitchClientPing, SwitchReply } from '../../shared/protocol/guest-messages.js'

/** How long a ping may wait for a VM's announcement after its old host said not-here. */
export const SWITCH_HOLD_MS = 10_000
/** Pings forwarded and not yet answered, per host (the controller link carries operator requests too: the lab uses half its requests_in_flight_max at most). */
export const SWITCH_INFLIGHT_PER_HOST_MAX = 512
/** Pings queued in the switch for one host while its in-flight limit is reached. */
export const SWITCH_QUEUE_PER_HOST_MAX = 4096
/** Pings a client may have outstanding in the switch (forwarded or waiting). */
export const SWITCH_PENDING_PER_CLIENT_MAX = 1024
/** VMs the table holds. */
export const SWITCH_TABLE_MAX = 4096
/** Times one ping is forwarded at most (a VM moving back and forth). */
const FORWARDS_MAX = 4

export interface VirtualSwitchDeps {
  clock: Clock
  /** Sends a ping to a host over its controller link; rejects if the host cannot be reached. */
  forward(host: string, ping: GuestPing): Promise<GuestReply>
  hold_ms?: number
  inflight_per_host_max?: number
  queue_per_host_max?: number
  pending_per_client_max?: number
  /** A VM's replies now come from another host. */
  onMoved?(move: SwitchMove): void
  /** The times of a move (default the clock's): the controller gives the system clock, which the hosts' stamps use too. */
  wallNow?(): number
}

/** A VM's replies changed host, as the switch saw it: what clients saw of a migration or failover. */
export interface SwitchMove {
  vm: string
  from: string
  to: string
  /** The last reply from `from`, the first from `to`: the gap every client of the VM saw at most. */
  last_reply_at_ms: number
  first_reply_at_ms: number
  gap_ms: number
  /** When `to` announced the VM, and how many pings awaiting `from` went to `to` then (null: no announcement seen since the last reply). */
  announced_at_ms: number | null
  released_pings: number
}

interface Pending {
  client: string
  ping: SwitchClientPing
  reply: (r: SwitchReply) => void
  forwards: number
  /** The host it awaits an answer from now (null: not forwarded now); an answer from an earlier forward is dropped. */
  at: string | null
}

interface Waiting {
  p: Pending
  cancel: () => void
}

/** A host's `vm-location` (guest-messages.ts), as the switch reads it. */
export interface SwitchLocation {
  vm: string
  at: 'here' | 'gone'
  /** The start op of the incarnation: a role's ops only grow. */
  op: number
}

/** Where a VM runs, and the incarnation (start op) that was announced there. */
interface TableEntry {
  host: string
  op: number
}

export class VirtualSwitch {
  private readonly table = new Map<string, TableEntry>()
  private readonly waiting = new Map<string, Waiting[]>()
  private readonly inflight = new Map<string, number>()
  private readonly queued = new Map<string, Pending[]>()
  private readonly perClient = new Map<string, number>()
  /** Pings forwarded and not answered yet, by VM. */
  private readonly awaiting = new Map<string, Set<Pending>>()
  /** Per VM: the host and time of its last reply, and its last announcement on a new host. */
  private readonly lastReply = new Map<string, { host: string; at_ms: number }>()
  private readonly moved = new Map<string, { at_ms: number; released_pings: number }>()
  private readonly hold_ms: number
  private readonly inflight_max: number
  private readonly queue_max: number
  private readonly client_max: number
  private counters = { forwarded: 0, answered: 0, unreachable: 0, rerouted: 0 }

  constructor(private readonly deps: VirtualSwitchDeps) {
    this.hold_ms = deps.hold_ms ?? SWITCH_HOLD_MS
    this.inflight_max = deps.inflight_per_host_max ?? SWITCH_INFLIGHT_PER_HOST_MAX
    this.queue_max = deps.queue_per_host_max ?? SWITCH_QUEUE_PER_HOST_MAX
    this.client_max = deps.pending_per_client_max ?? SWITCH_PENDING_PER_CLIENT_MAX
  }

  private wallNow(): number {
    return this.deps.wallNow?.() ?? this.deps.clock.now()
  }

  /** Where the table says the VM runs. */
  where(vm: string): string | undefined {
    return this.table.get(vm)?.host
  }

  /** A host's `vm-location`, as it came on that host's own controller link. */
  located(host: string, location: SwitchLocation): void {
    if (location.at === 'here') this.announce(location.vm, host, location.op)
    else this.withdraw(location.vm, host)
  }

  /** The VM runs on `host` now as start `op` (a gratuitous ARP): waiting pings for it go there. */
  announce(vm: string, host: string, op = 0): void {
    const known = this.table.get(vm)
    if (known !== undefined && known.host !== host && known.op > op) return // an older incarnation, announced late
    if (known === undefined && this.table.size >= SWITCH_TABLE_MAX) this.table.delete(this.table.keys().next().value as string)
    this.table.delete(vm)
    this.table.set(vm, { host, op })
    if (known !== undefined && known.host !== host) {
      const released_pings = this.releaseAwaiting(vm, known.host)
      if (!this.moved.has(vm) && this.moved.size >= SWITCH_TABLE_MAX) this.moved.delete(this.moved.keys().next().value as string)
      this.moved.set(vm, { at_ms: this.wallNow(), released_pings })
    }
    this.resend(vm)
  }

  /** Pings awaiting `old`'s answer for `vm` (held by its paused guest) go to the VM's new host now; returns how many. */
  private releaseAwaiting(vm: string, old: string): number {
    const set = this.awaiting.get(vm)
    if (set === undefined) return 0
    const released = [...set].filter((p) => p.at === old)
    for (const p of released) {
      set.delete(p)
      p.at = null
    }
    if (set.size === 0) this.awaiting.delete(vm)
    for (const p of released) this.send(p)
    return released.length
  }

  /** A host's controller link is up (again): pings that waited for it go out. */
  hostUp(host: string): void {
    for (const vm of [...this.waiting.keys()]) if (this.table.get(vm)?.host === host) this.resend(vm)
  }

  /** `host` no longer runs the VM; ignored if the table already points elsewhere. */
  withdraw(vm: string, host: string): void {
    if (this.table.get(vm)?.host === host) this.table.delete(vm)
  }

  /** A host process is gone: nothing runs there any more. */
  forgetHost(host: string): void {
    for (const [vm, e] of [...this.table]) if (e.host === host) this.table.delete(vm)
  }

  /** A client's ping: exactly one reply (pong or unreachable) follows, now or later. */
  ping(client: string, ping: SwitchClientPing, reply: (r: SwitchReply) => void): void {
    const n = this.perClient.get(client) ?? 0
    if (n >= this.client_max) {
      this.counters.unreachable++
      reply({ t: 'unreachable', vm: ping.vm, seq: ping.seq, reason: `${n} pings of this client are still outstanding; slow down` })
      return
    }
    this.perClient.set(client, n + 1)
    const p: Pending = { client, ping, forwards: 0, at: null, reply: (r) => this.finish(client, r, reply) }
    if (!this.table.has(ping.vm))
      return this.unreachable(p, `no such address: no host has announced vm ${ping.vm}; is it running? (\`hvlab vm list\`)`)
    this.send(p)
  }

  status(): {
    vms: number
    waiting: number
    inflight: number
    queued: number
    forwarded: number
    answered: number
    unreachable: number
    rerouted: number
  } {
    let waiting = 0
    for (const w of this.waiting.values()) waiting += w.length
    let inflight = 0
    for (const n of this.inflight.values()) inflight += n
    let queued = 0
    for (const q of this.queued.values()) queued += q.length
    return { vms: this.table.size, waiting, inflight, queued, ...this.counters }
  }

  /** Drops every client's outstanding pings with a reason (the controller stops). */
  close(reason: string): void {
    for (const [vm, ws] of [...this.waiting]) {
      this.waiting.delete(vm)
      for (const w of ws) {
        w.cancel()
        this.unreachable(w.p, reason)
      }
    }
  }

  private send(p: Pending): void {
    const host = this.table.get(p.ping.vm)?.host
    if (host === undefined) return this.wait(p)
    if (p.forwards >= FORWARDS_MAX) return this.unreachable(p, `vm ${p.ping.vm} moved ${FORWARDS_MAX} times while this ping was on its way`)
    const inflight = this.inflight.get(host) ?? 0
    if (inflight >= this.inflight_max) {
      const q = this.queued.get(host) ?? []
      if (q.length >= this.queue_max)
        return this.unreachable(p, `${inflight} pings to ${host} are awaiting replies and ${q.length} more are queued; slow down`)
      q.push(p)
      this.queued.set(host, q)
      return
    }
    p.forwards++
    this.inflight.set(host, inflight + 1)
    this.counters.forwarded++
    this.await(p, host)
    const forward = p.forwards
    const current = (): boolean => p.forwards === forward && p.at === host
    this.deps.forward(host, { t: 'guest-ping', vm: p.ping.vm, seq: p.ping.seq, client: p.client }).then(
      (r) => {
        this.done(host)
        if (!current()) return // released to the VM's new host meanwhile: that answer counts
        this.answered(p)
        this.onHostReply(p, host, r)
      },
      (e: unknown) => {
        this.done(host)
        if (!current()) return
        this.answered(p)
        // The link dropped (or was down): like a TCP retransmit, try again once it is back.
        if (e instanceof HvlabError && e.code === 'HVLAB_E_CLOSED') return this.wait(p)
        this.unreachable(p, `${host} did not answer: ${describeError(e)}`)
      },
    )
  }

  private await(p: Pending, host: string): void {
    p.at = host
    const set = this.awaiting.get(p.ping.vm) ?? new Set<Pending>()
    set.add(p)
    this.awaiting.set(p.ping.vm, set)
  }

  private answered(p: Pending): void {
    p.at = null
    const set = this.awaiting.get(p.ping.vm)
    set?.delete(p)
    if (set?.size === 0) this.awaiting.delete(p.ping.vm)
  }

  /** A reply from `host`: a first one from a new host reports the move. */
  private noteReply(vm: string, host: string): void {
    const now = this.wallNow()
    const last = this.lastReply.get(vm)
    if (last !== undefined && last.host !== host) {
      const announced = this.moved.get(vm) ?? null
      this.moved.delete(vm)
      this.deps.onMoved?.({
        vm,
        from: last.host,
        to: host,
        last_reply_at_ms: last.at_ms,
        first_reply_at_ms: now,
        gap_ms: now - last.at_ms,
        announced_at_ms: announced?.at_ms ?? null,
        released_pings: announced?.released_pings ?? 0,
      })
    }
    if (last === undefined && this.lastReply.size >= SWITCH_TABLE_MAX) this.lastReply.delete(this.lastReply.keys().next().value as string)
    this.lastReply.delete(vm)
    this.lastReply.set(vm, { host, at_ms: now })
  }

  /** A reply (or failure) from `host` freed a slot: the next queued ping for it goes out. */
  private done(host: string): void {
    const left = (this.inflight.get(host) ?? 1) - 1
    if (left <= 0) this.inflight.delete(host)
    else this.inflight.set(host, left)
    const q = this.queued.get(host)
    const next = q?.shift()
    if (q !== undefined && q.length === 0) this.queued.delete(host)
    if (next !== undefined) this.send(next)
  }

  private resend(vm: string): void {
    const waiting = this.waiting.get(vm)
    if (waiting === undefined) return
    this.waiting.delete(vm)
    for (const w of waiting) {
      w.cancel()
      this.send(w.p)
    }
  }

  private onHostReply(p: Pending, host: string, r: GuestReply): void {
    if (r.t === 'guest-pong') {
      this.counters.answered++
      this.noteReply(p.ping.vm, host)
      p.reply({ t: 'pong', vm: r.vm, seq: r.seq, value: r.value, host: r.host })
      return
    }
    if (r.reason === 'paused-too-long') return this.unreachable(p, `vm ${p.ping.vm} stayed paused on ${host} too long to answer`)
    // not-here: the VM left that host. Its new host, if the table knows it already; else wait for the announcement.
    this.counters.rerouted++
    const now = this.table.get(p.ping.vm)?.host
    if (now !== undefined && now !== host) return this.send(p)
    this.wait(p)
  }

  private wait(p: Pending): void {
    const list = this.waiting.get(p.ping.vm) ?? []
    const w: Waiting = {
      p,
      cancel: this.deps.clock.setTimer(this.hold_ms, () => {
        const l = this.waiting.get(p.ping.vm)
        const i = l?.indexOf(w) ?? -1
        if (l === undefined || i < 0) return
        l.splice(i, 1)
        if (l.length === 0) this.waiting.delete(p.ping.vm)
        this.unreachable(p, `vm ${p.ping.vm} left its host (or its host's link dropped) and no host announced it within ${this.hold_ms} ms`)
      }),
    }
    list.push(w)
    this.waiting.set(p.ping.vm, list)
  }

  private unreachable(p: Pending, reason: string): void {
    this.counters.unreachable++
    p.reply({ t: 'unreachable', vm: p.ping.vm, seq: p.ping.seq, reason: reason.slice(0, 512) })
  }

  private finish(client: string, r: SwitchReply, reply: (r: SwitchReply) => void): void {
    const n = (this.perClient.get(client) ?? 1) - 1
    if (n <= 0) this.perClient.delete(client)
    else this.perClient.set(client, n)
    reply(r)
  }
}
