import t from 'tap'
import {
  RemoteCopyGroup,
  type RcEffect,
  type RcGroupConfigInput,
  type RcGroupOptions,
  type RcInput,
  type RcGroupRecord,
} from '../../array-emulator/remote-copy-group.js'
import { RESYNC_GROUPS_MAX_DEFAULT, ResyncLimiter } from '../../array-emulator/resync-limiter.js'
import { MachineDriver, type EffectHandlers } from '../../shared/machine/driver.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { forEachSeed, seeds } from '../sim/seed.js'

const BS = 16 // small blocks keep the harness readable; the machine does not care
const BLOCKS = 8

/**
 * One array: the group, its volumes in memory, snapshots, and what its hosts saw. Like
 * RemoteCopyService, every group it runs (a new one, or one restarted from its record)
 * cycles only with a permit from the array's ResyncLimiter; a new group means a new
 * process, with a fresh limiter.
 */
class Side {
  readonly vols = new Map<string, Buffer>()
  readonly snaps = { delta: new Map<string, Buffer>(), rollback: new Map<string, Buffer>() }
  readonly acked = new Set<number>()
  readonly failed = new Set<number>()
  readonly events: string[] = []
  timers: { at_ms: number; token: string }[] = []
  record: RcGroupRecord | undefined
  /** persist-blocks appended since the last persist. */
  journal: Extract<RcEffect, { kind: 'persist-blocks' }>[] = []
  limiter!: ResyncLimiter
  /** Permit requests that had to wait (the limiter was full). */
  permits_waited = 0
  /** Groups the limiter granted a permit during the current step: each gets its resync-permit input right after it. */
  granted: string[] = []
  private current!: RemoteCopyGroup
  constructor(
    readonly name: string,
    group: RemoteCopyGroup,
    readonly resync_groups_max = RESYNC_GROUPS_MAX_DEFAULT,
  ) {
    this.group = group
    this.vols.set('v', Buffer.alloc(BLOCKS * BS))
    this.vols.set('w', Buffer.alloc(BLOCKS * BS))
  }
  get group(): RemoteCopyGroup {
    return this.current
  }
  /** Runs `g` as remote-copy-service.ts adopts a group: with resync permits, in a new process (a fresh limiter). */
  set group(g: RemoteCopyGroup) {
    g.requireResyncPermits()
    this.current = g
    this.limiter = new ResyncLimiter(this.resync_groups_max)
    this.granted = []
  }
  block(volume: string, b: number): number {
    return this.vols.get(volume)![b * BS]!
  }
  contents(volume: string): number[] {
    return Array.from({ length: BLOCKS }, (_, b) => this.block(volume, b))
  }
}

interface InFlight {
  to: Side
  message: RcPeerMessage
  attachment: Uint8Array | undefined
}

/** Two groups back to back over a FIFO "link" that can be cut. */
class Lab {
  now_ms = 0
  link = false
  queue: InFlight[] = []
  writeSeq = 0
  /** Each side's group driven as remote-copy-service.ts drives it: a MachineDriver, a handler per effect kind. */
  private readonly drivers: ReadonlyMap<Side, MachineDriver<RcInput, RcEffect>>
  /** The effects of the step `step` is carrying out. */
  private stepped: RcEffect[] = []
  constructor(
    readonly a: Side,
    readonly b: Side,
  ) {
    this.drivers = new Map([a, b].map((s) => [s, this.driverOf(s)]))
  }

  static create(over: Partial<RcGroupConfigInput> = {}, options: RcGroupOptions = {}, resync_groups_max = RESYNC_GROUPS_MAX_DEFAULT): Lab {
    const base = { group: 'rc-vm1', mode: 'sync' as const, block_size_bytes: BS, ...over }
    const a = new Side('a', new RemoteCopyGroup({ ...base, partner: 'b', role: 'primary' }, options), resync_groups_max)
    const b = new Side('b', new RemoteCopyGroup({ ...base, partner: 'a', role: 'secondary' }, options), resync_groups_max)
    return new Lab(a, b)
  }

  other(s: Side): Side {
    return s === this.a ? this.b : this.a
  }

  /**
   * One input and its effects (carried out inside `feed`: every handler is synchronous; a
   * refusal throws from it); then, as remote-copy-service.ts grant() does, the permits
   * granted meanwhile (each its own step).
   */
  step(s: Side, input: RcInput): RcEffect[] {
    this.stepped = []
    this.drivers.get(s)!.feed(input)
    const effects = this.stepped
    this.deliverPermits(s)
    return effects
  }

  private driverOf(s: Side): MachineDriver<RcInput, RcEffect> {
    return new MachineDriver<RcInput, RcEffect>({
      step: (input) => (this.stepped = s.group.step(input, this.now_ms)),
      handlers: this.handlers(s),
    })
  }

  private deliverPermits(s: Side): void {
    while (s.granted.length > 0) {
      const group = s.granted.shift()!
      if (group === s.group.config.group) this.step(s, { kind: 'resync-permit' })
    }
  }

  /** Another group of `s`'s array takes a resync permit (or waits for one), or gives it back (`release`). */
  otherGroupResyncs(s: Side, release: boolean): void {
    if (!release) {
      s.limiter.request('other')
      return
    }
    s.granted.push(...s.limiter.release('other'))
    this.deliverPermits(s)
  }

  private handlers(s: Side): EffectHandlers<RcEffect> {
    const key = (v: string, b: number) => `${v}:${b}`
    return {
      send: (e) => void (this.link && this.queue.push({ to: this.other(s), message: e.message, attachment: e.attachment })),
      'send-blocks': (e) => {
        const data = Buffer.concat(
          e.blocks.map((b) => s.snaps.delta.get(key(e.volume, b)) ?? s.vols.get(e.volume)!.subarray(b * BS, (b + 1) * BS)),
        )
        const message: RcPeerMessage = {
          t: 'rc-blocks',
          group: e.group,
          cycle: e.cycle,
          batch: e.batch,
          volume: e.remote_volume,
          block_list: e.blocks,
        }
        if (this.link) this.queue.push({ to: this.other(s), message, attachment: Buffer.from(data) })
      },
      'write-local': (e) => e.blocks.forEach((b, i) => Buffer.from(e.data).copy(s.vols.get(e.volume)!, b * BS, i * BS, (i + 1) * BS)),
      preserve: (e) => {
        for (const b of e.blocks) {
          const k = key(e.volume, b)
          if (!s.snaps[e.snapshot].has(k)) s.snaps[e.snapshot].set(k, Buffer.from(s.vols.get(e.volume)!.subarray(b * BS, (b + 1) * BS)))
        }
      },
      rollback: (e) => {
        for (const b of e.blocks) s.snaps.rollback.get(key(e.volume, b))!.copy(s.vols.get(e.volume)!, b * BS)
      },
      release: (e) => s.snaps[e.snapshot].clear(),
      'ack-host': (e) => void s.acked.add(e.write_id),
      'fail-host': (e) => void s.failed.add(e.write_id),
      persist: (e) => {
        s.record = e.record
        s.journal = []
      },
      'persist-blocks': (e) => void s.journal.push(e),
      'set-timer': (e) => void s.timers.push({ at_ms: e.at_ms, token: e.token }),
      emit: (e) => void s.events.push(e.event),
      'request-resync-permit': () => {
        if (s.limiter.request(s.group.config.group)) s.granted.push(s.group.config.group)
        else s.permits_waited++
      },
      'release-resync-permit': () => void s.granted.push(...s.limiter.release(s.group.config.group)),
    }
  }

  deliverOne(): InFlight | undefined {
    const m = this.queue.shift()
    if (m) this.step(m.to, { kind: 'peer', message: m.message, attachment: m.attachment })
    return m
  }

  run(limit = 10_000): void {
    for (let i = 0; i < limit; i++) if (!this.deliverOne()) return
    throw new Error('the link never went quiet')
  }

  linkUp(): void {
    this.link = true
    this.step(this.a, { kind: 'link-up' })
    this.step(this.b, { kind: 'link-up' })
  }

  linkDown(): void {
    this.link = false
    this.queue = []
    this.step(this.a, { kind: 'link-down' })
    this.step(this.b, { kind: 'link-down' })
  }

  write(s: Side, volume: string, block: number, value: number, blocks = 1): number {
    const id = ++this.writeSeq
    this.step(s, { kind: 'host-write', write_id: id, volume, block, data: Buffer.alloc(blocks * BS, value) })
    return id
  }

  advance(delta_ms: number): void {
    const end = this.now_ms + delta_ms
    for (;;) {
      const due = [this.a, this.b]
        .flatMap((s) => s.timers.map((tm) => ({ s, tm })))
        .filter((x) => x.tm.at_ms <= end)
        .sort((x, y) => x.tm.at_ms - y.tm.at_ms)[0]
      if (!due) break
      due.s.timers = due.s.timers.filter((tm) => tm !== due.tm)
      this.now_ms = due.tm.at_ms
      this.step(due.s, { kind: 'timer', token: due.tm.token })
    }
    this.now_ms = end
  }

  /** Link up, both volumes admitted, started, initial full sync done. */
  setUp(): this {
    this.linkUp()
    this.run()
    this.step(this.a, { kind: 'admit', volume: 'v', remote_volume: 'v', block_count: BLOCKS })
    this.step(this.a, { kind: 'admit', volume: 'w', remote_volume: 'w', block_count: BLOCKS })
    this.run()
    this.step(this.a, { kind: 'command', verb: 'start' })
    this.run()
    return this
  }

  states(s: Side): string[] {
    return s.group.status().volumes.map((v) => v.state)
  }
}

t.test('admit + start: New volumes get one full sync, then both sides are Synced', async (t) => {
  const lab = Lab.create()
  lab.linkUp()
  lab.run()
  lab.step(lab.a, { kind: 'admit', volume: 'v', remote_volume: 'v', block_count: BLOCKS })
  lab.run()
  t.same(lab.states(lab.a), ['New'])
  t.same(lab.states(lab.b), ['New'])
  lab.write(lab.a, 'v', 0, 5) // before start: acknowledged locally, tracked
  lab.step(lab.a, { kind: 'command', verb: 'start' })
  t.same(lab.states(lab.a), ['Syncing'])
  lab.run()
  t.same(lab.states(lab.a), ['Synced'])
  t.same(lab.states(lab.b), ['Synced'])
  t.same(lab.b.contents('v'), lab.a.contents('v'))
  t.equal(lab.a.group.status().bytes_resynced_total, BLOCKS * BS, 'one full copy')
  t.equal(lab.a.group.status().bytes_behind, 0)
  t.ok(lab.a.group.status().last_sync_ms !== undefined)
})

t.test('sync mode: the host ack comes only after the secondary has the write', async (t) => {
  const lab = Lab.create().setUp()
  const id = lab.write(lab.a, 'v', 2, 0x42)
  t.equal(lab.a.block('v', 2), 0x42, 'written locally')
  t.notOk(lab.a.acked.has(id), 'not acknowledged yet')
  t.equal(lab.b.block('v', 2), 0, 'secondary does not have it yet')
  t.equal(lab.queue[0]?.message.t, 'rc-write')
  lab.deliverOne() // rc-write reaches b, which writes it and acks
  t.equal(lab.b.block('v', 2), 0x42, 'secondary has it')
  t.notOk(lab.a.acked.has(id), 'ack still on its way')
  lab.deliverOne()
  t.ok(lab.a.acked.has(id), 'acknowledged after the secondary had it')
  t.equal(lab.a.group.status().bytes_resynced_total, 2 * BLOCKS * BS, 'no resync for a replicated write')
})

t.test('sync mode: writes across volumes reach the secondary in write order', async (t) => {
  const lab = Lab.create().setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.write(lab.a, 'w', 0, 2)
  lab.write(lab.a, 'v', 0, 3)
  const order = lab.queue.filter((m) => m.message.t === 'rc-write').map((m) => (m.message as { seq: number }).seq)
  t.same(
    order,
    [...order].sort((x, y) => x - y),
  )
  lab.run()
  t.equal(lab.b.block('v', 0), 3)
  t.equal(lab.b.block('w', 0), 2)
})

t.test('link loss: writes are tracked; on link return only changed blocks are resent', async (t) => {
  const lab = Lab.create().setUp()
  const before = lab.a.group.status().bytes_resynced_total
  const inflight = lab.write(lab.a, 'v', 7, 9) // sent, not acknowledged when the link drops
  lab.linkDown()
  t.ok(lab.a.acked.has(inflight), 'no_fail_wrt_on_err: acknowledged on the primary alone')
  const ids = [lab.write(lab.a, 'v', 1, 1), lab.write(lab.a, 'v', 1, 2), lab.write(lab.a, 'w', 4, 3, 2)]
  t.ok(
    ids.every((id) => lab.a.acked.has(id)),
    'writes keep being accepted',
  )
  t.same(lab.states(lab.a), ['NotSynced', 'NotSynced'])
  t.equal(lab.a.group.status().bytes_behind, 4 * BS, 'v:1, v:7, w:4, w:5')
  lab.linkUp()
  lab.deliverOne() // a's hello reaches b
  lab.deliverOne() // b's hello reaches a: resync starts
  t.same(lab.states(lab.a), ['Syncing', 'Syncing'])
  lab.run()
  t.same(lab.states(lab.a), ['Synced', 'Synced'])
  t.same(lab.states(lab.b), ['Synced', 'Synced'])
  t.equal(lab.a.group.status().bytes_resynced_total - before, 4 * BS, 'only the 4 changed blocks were sent')
  t.same(lab.b.contents('v'), lab.a.contents('v'))
  t.same(lab.b.contents('w'), lab.a.contents('w'))
  t.equal(lab.b.block('v', 1), 2)
  // and synchronous replication is back
  const id = lab.write(lab.a, 'v', 3, 7)
  t.notOk(lab.a.acked.has(id))
  lab.run()
  t.ok(lab.a.acked.has(id))
})

t.test('fail_wrt_on_err refuses host writes while the link is down and writes nothing', async (t) => {
  const lab = Lab.create({ write_error_policy: 'fail_wrt_on_err' }).setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.linkDown()
  t.throws(() => lab.write(lab.a, 'v', 0, 2), {
    code: 'HVLAB_E_REFUSED',
    message: /link to array b is down.*fail_wrt_on_err; nothing was written/,
  })
  t.equal(lab.a.block('v', 0), 1)
  t.equal(lab.a.group.status().bytes_behind, BS, 'only the write that was in flight')
  t.ok(lab.a.failed.has(1), 'the in-flight write was failed, not acknowledged')
})

t.test('bad input is refused and changes nothing', async (t) => {
  const lab = Lab.create().setUp()
  t.throws(() => lab.step(lab.a, { kind: 'host-write', write_id: 1, volume: 'v', block: 7, data: Buffer.alloc(2 * BS) }), {
    code: 'HVLAB_E_REFUSED',
    message: /blocks 7\.\.8/,
  })
  t.throws(() => lab.step(lab.a, { kind: 'host-write', write_id: 1, volume: 'v', block: 0, data: Buffer.alloc(BS + 1) }), {
    code: 'HVLAB_E_REFUSED',
    message: /whole number/,
  })
  t.throws(() => lab.step(lab.a, { kind: 'host-write', write_id: 1, volume: 'zz', block: 0, data: Buffer.alloc(BS) }), {
    code: 'HVLAB_E_NOT_FOUND',
  })
  t.throws(() => lab.write(lab.b, 'v', 0, 1), { code: 'HVLAB_E_REFUSED', message: /secondary on this array.*read-only/ })
  t.throws(() => lab.step(lab.b, { kind: 'command', verb: 'failover' }), { code: 'HVLAB_E_STATE', message: /use switchover/ })
  t.throws(() => lab.step(lab.b, { kind: 'command', verb: 'start' }), { code: 'HVLAB_E_STATE', message: /run it on array a/ })
  t.equal(lab.queue.length, 0)
  t.same(lab.a.contents('v'), Array(BLOCKS).fill(0))
})

t.test('failover, recover, restore: both sides wrote, their changed blocks are unioned', async (t) => {
  const lab = Lab.create().setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.run()
  lab.linkDown()
  lab.write(lab.a, 'v', 1, 0xaa) // on the old primary after the split: will be discarded
  lab.step(lab.b, { kind: 'command', verb: 'failover' })
  t.equal(lab.b.group.currentRole, 'primary-rev')
  lab.write(lab.b, 'v', 5, 0xbb) // the new primary takes writes
  t.equal(lab.b.block('v', 0), 1, 'the secondary had every acknowledged sync write')
  lab.linkUp()
  lab.run()
  t.throws(() => lab.write(lab.a, 'v', 2, 1), { code: 'HVLAB_E_REFUSED', message: /failed over to array b/ }, 'the old primary is fenced')
  t.throws(() => lab.step(lab.a, { kind: 'command', verb: 'recover' }), { code: 'HVLAB_E_STATE', message: /array b/ })
  const before = lab.b.group.status().bytes_resynced_total
  lab.step(lab.b, { kind: 'command', verb: 'recover' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'secondary-rev')
  t.equal(lab.b.group.currentRole, 'primary-rev')
  t.equal(lab.b.group.status().bytes_resynced_total - before, 2 * BS, 'blocks 1 (old primary) and 5 (new primary), nothing else')
  t.same(lab.a.contents('v'), lab.b.contents('v'))
  t.equal(lab.a.block('v', 1), 0, "the old primary's unreplicated write was rolled back to the surviving copy")
  t.same(lab.states(lab.b), ['Synced', 'Synced'])
  t.same(lab.states(lab.a), ['Synced', 'Synced'], 'the Secondary-Rev is started and Synced, not Stopped')
  // replication now runs b -> a, synchronously
  const id = lab.write(lab.b, 'w', 3, 0xcc)
  t.notOk(lab.b.acked.has(id))
  lab.run()
  t.ok(lab.b.acked.has(id))
  t.equal(lab.a.block('w', 3), 0xcc)
  // restore: roles back to natural, replication a -> b again
  lab.step(lab.b, { kind: 'command', verb: 'restore' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'primary')
  t.equal(lab.b.group.currentRole, 'secondary')
  t.throws(() => lab.write(lab.b, 'v', 0, 1), { code: 'HVLAB_E_REFUSED' })
  lab.write(lab.a, 'v', 6, 0xdd)
  lab.run()
  t.equal(lab.b.block('v', 6), 0xdd)
  t.same(lab.states(lab.a), ['Synced', 'Synced'])
})

t.test('failover onto a never-synced copy needs force', async (t) => {
  const lab = Lab.create()
  lab.linkUp()
  lab.run()
  lab.step(lab.a, { kind: 'admit', volume: 'v', remote_volume: 'v', block_count: BLOCKS })
  lab.run()
  lab.linkDown()
  t.throws(() => lab.step(lab.b, { kind: 'command', verb: 'failover' }), {
    code: 'HVLAB_E_STATE',
    message: /never completed a sync.*force/,
  })
  t.equal(lab.b.group.currentRole, 'secondary')
  lab.step(lab.b, { kind: 'command', verb: 'failover', force: true })
  t.equal(lab.b.group.currentRole, 'primary-rev')
})

t.test('switchover: planned, zero-loss swap; restore and reverse afterwards', async (t) => {
  const lab = Lab.create().setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.run()
  lab.write(lab.a, 'v', 1, 2) // in flight when the switchover is asked for
  lab.step(lab.a, { kind: 'command', verb: 'switchover' })
  t.throws(() => lab.write(lab.a, 'v', 2, 3), { code: 'HVLAB_E_STATE', message: /changing roles/ })
  lab.run()
  t.equal(lab.a.group.currentRole, 'secondary-rev')
  t.equal(lab.b.group.currentRole, 'primary-rev')
  t.same(lab.b.contents('v'), lab.a.contents('v'), 'nothing lost')
  t.equal(lab.b.block('v', 1), 2)
  const id = lab.write(lab.b, 'v', 3, 4)
  lab.run()
  t.ok(lab.b.acked.has(id))
  t.equal(lab.a.block('v', 3), 4)
  // reverse: the current direction becomes the natural one
  lab.step(lab.b, { kind: 'command', verb: 'reverse' })
  lab.run()
  t.equal(lab.b.group.currentRole, 'primary')
  t.equal(lab.a.group.currentRole, 'secondary')
  lab.write(lab.b, 'v', 4, 5)
  lab.run()
  t.equal(lab.a.block('v', 4), 5)
  // and a switchover back
  lab.step(lab.b, { kind: 'command', verb: 'switchover' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'primary-rev')
  lab.step(lab.a, { kind: 'command', verb: 'restore' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'secondary')
  t.equal(lab.b.group.currentRole, 'primary')
})

t.test('restore is refused while the group is not in sync', async (t) => {
  const lab = Lab.create({ mode: 'periodic', period_ms: 1000 }).setUp()
  lab.step(lab.a, { kind: 'command', verb: 'switchover' })
  lab.run()
  t.equal(lab.b.group.currentRole, 'primary-rev')
  lab.write(lab.b, 'v', 0, 1)
  t.throws(() => lab.step(lab.b, { kind: 'command', verb: 'restore' }), {
    code: 'HVLAB_E_STATE',
    message: /not in sync \(16 bytes behind\)/,
  })
  lab.step(lab.b, { kind: 'command', verb: 'sync' })
  lab.run()
  lab.step(lab.b, { kind: 'command', verb: 'restore' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'primary')
  t.equal(lab.a.block('v', 0), 1)
})

t.test('periodic: each cycle sends the delta as of its consistent point (copy-on-write)', async (t) => {
  const lab = Lab.create({ mode: 'periodic', period_ms: 1000, batch_blocks_max: 1, batches_inflight_max: 1 }).setUp()
  const w1 = lab.write(lab.a, 'v', 0, 1)
  t.ok(lab.a.acked.has(w1), 'acknowledged locally')
  t.equal(lab.b.block('v', 0), 0, 'not sent before the period')
  lab.write(lab.a, 'v', 1, 1)
  lab.advance(1000) // cycle starts: consistent point = v0=1, v1=1
  t.same(lab.states(lab.a), ['Syncing', 'Syncing'])
  lab.deliverOne() // cycle-begin
  lab.deliverOne() // first batch: block 0
  lab.write(lab.a, 'v', 1, 2) // after the consistent point, before block 1 was read
  lab.run()
  t.equal(lab.b.block('v', 0), 1)
  t.equal(lab.b.block('v', 1), 1, 'the secondary got block 1 as of the consistent point, not the later write')
  t.same(lab.states(lab.b), ['Synced', 'Synced'])
  t.equal(lab.a.group.status().bytes_behind, BS, 'the later write waits for the next period')
  lab.advance(1000)
  lab.run()
  t.equal(lab.b.block('v', 1), 2)
  t.equal(lab.a.group.status().last_sync_ms, 2000)
})

t.test('periodic: an unplanned failover loses at most the writes since the last completed sync', async (t) => {
  const lab = Lab.create({ mode: 'periodic', period_ms: 1000, batch_blocks_max: 1, batches_inflight_max: 1 }).setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.write(lab.a, 'v', 1, 1)
  lab.advance(1000)
  lab.run() // sync at 1000 completes: v0=1 v1=1
  const afterSync = lab.a.contents('v')
  lab.write(lab.a, 'v', 0, 2)
  lab.write(lab.a, 'v', 1, 2)
  lab.write(lab.a, 'v', 2, 2)
  lab.advance(1000) // next cycle starts
  lab.deliverOne() // cycle-begin
  lab.deliverOne() // block 0 applied on b (b is now inconsistent: v0=2, v1=1)
  t.equal(lab.b.block('v', 0), 2)
  lab.linkDown() // primary site lost mid-cycle
  t.same(lab.states(lab.b), ['Stale', 'Stale'])
  lab.step(lab.b, { kind: 'command', verb: 'failover' })
  t.same(lab.b.contents('v'), afterSync, 'rolled back to the last completed sync point')
  t.equal(lab.b.group.status().last_sync_ms, 1000)
})

t.test(
  'auto_failover (Peer Persistence): after a failover during a cut, the side that failed over recovers the other once the link is back',
  async (t) => {
    const lab = Lab.create({ auto_failover: true }).setUp()
    lab.write(lab.a, 'v', 0, 1)
    lab.run()
    lab.linkDown()
    lab.write(lab.a, 'v', 1, 0xaa) // on the old primary after the split: rolled back by the recovery
    lab.step(lab.b, { kind: 'command', verb: 'failover' })
    lab.write(lab.b, 'v', 5, 0xbb)
    t.equal(lab.b.group.status().generation, lab.a.group.status().generation + 1, "the failover raised b's generation")
    lab.linkUp()
    lab.run()
    t.ok(lab.b.events.includes('rc.auto-recover'), 'b recovered a by itself')
    t.equal(lab.a.group.currentRole, 'secondary-rev')
    t.equal(lab.b.group.currentRole, 'primary-rev')
    t.same(lab.a.contents('v'), lab.b.contents('v'), 'both copies equal')
    t.equal(lab.a.block('v', 5), 0xbb, "the new primary's write reached a")
    t.equal(lab.a.block('v', 1), 0, "the old primary's write after the split was rolled back")
    t.same(lab.states(lab.a), ['Synced', 'Synced'])
    t.notOk(lab.a.events.includes('rc.auto-recover'), 'the stale side never tries to recover the newer one')
  },
)

t.test('periodic: cycles go on after a failover, its automatic recover, and a restore', async (t) => {
  const lab = Lab.create({ mode: 'periodic', period_ms: 1000, auto_failover: true }).setUp()
  lab.write(lab.a, 'v', 0, 1)
  lab.advance(1000)
  lab.run()
  t.equal(lab.b.block('v', 0), 1, 'first cycle')
  lab.linkDown()
  lab.step(lab.b, { kind: 'command', verb: 'failover' })
  lab.write(lab.b, 'v', 1, 2)
  lab.linkUp()
  lab.run()
  t.equal(lab.b.group.currentRole, 'primary-rev')
  t.equal(lab.a.group.currentRole, 'secondary-rev')
  /** A write on `from`, then three periods: does it reach `to`? */
  const replicated = (from: typeof lab.a, to: typeof lab.a, block: number, value: number): number => {
    lab.write(from, 'v', block, value)
    for (let i = 0; i < 3; i++) {
      lab.advance(1000)
      lab.run()
    }
    return to.block('v', block)
  }
  t.equal(replicated(lab.b, lab.a, 2, 3), 3, 'cycles from b after the recover')
  lab.step(lab.b, { kind: 'command', verb: 'restore' })
  lab.run()
  t.equal(lab.a.group.currentRole, 'primary')
  t.equal(lab.b.group.currentRole, 'secondary')
  t.equal(replicated(lab.a, lab.b, 3, 4), 4, 'cycles from a after the restore')
})

t.test('auto_recover off: the group stops on link loss and must be started again', async (t) => {
  const lab = Lab.create({ auto_recover: false }).setUp()
  lab.linkDown()
  lab.write(lab.a, 'v', 0, 1)
  lab.linkUp()
  lab.run()
  t.equal(lab.b.block('v', 0), 0)
  t.same(lab.states(lab.a), ['Stopped', 'Stopped'])
  lab.step(lab.a, { kind: 'command', verb: 'start' })
  lab.run()
  t.equal(lab.b.block('v', 0), 1)
})

t.test('a restarted group keeps its roles and what it must still send', async (t) => {
  const lab = Lab.create({ mode: 'periodic', period_ms: 1000 }).setUp()
  lab.linkDown()
  lab.write(lab.a, 'v', 3, 7)
  lab.write(lab.a, 'w', 2, 8)
  lab.write(lab.a, 'w', 2, 9)
  t.equal(lab.a.journal.length, 2, 'a block already dirty is not appended again')
  const record = JSON.parse(JSON.stringify(lab.a.record)) as RcGroupRecord
  const restarted = RemoteCopyGroup.fromRecord(record, lab.a.journal)
  t.equal(restarted.currentRole, 'primary')
  const s = restarted.status()
  t.equal(s.started, true)
  t.equal(s.bytes_behind, 2 * BS, 'v:3 from the record, w:2 from the append')
})

t.test(
  "resync permits: a cycle waits while the array's other group holds the only permit, runs when it is given back, and gives its own back",
  async (t) => {
    const lab = Lab.create({}, {}, 1).setUp()
    t.equal(lab.a.limiter.running, 0, 'the initial sync gave its permit back')
    lab.linkDown()
    lab.write(lab.a, 'v', 3, 3)
    lab.otherGroupResyncs(lab.a, false)
    lab.linkUp()
    lab.run()
    t.equal(lab.a.group.status().bytes_behind, BS, 'block v:3 is dirty, and no cycle runs without a permit')
    t.equal(lab.a.limiter.queued, 1, 'the group waits for a permit')
    t.equal(lab.b.block('v', 3), 0)
    lab.otherGroupResyncs(lab.a, true)
    t.same(lab.states(lab.a), ['Syncing', 'Syncing'], 'the permit came: the cycle runs')
    lab.run()
    t.same(lab.states(lab.a), ['Synced', 'Synced'])
    t.equal(lab.b.block('v', 3), 3)
    t.same([lab.a.limiter.running, lab.a.limiter.queued], [0, 0], 'and the permit went back')
  },
)

const SIM_SEEDS = seeds(import.meta.url, { base: 1000, count: 40 })

t.test('seeded simulation: random writes, link flaps and busy resync permits always converge to equal copies', async (t) => {
  let permits_waited = 0
  const { runs, failures } = await forEachSeed(t, SIM_SEEDS, (seed) => {
    const rnd = mulberry32(seed)
    const mode = rnd() < 0.5 ? 'sync' : 'periodic'
    // One resync permit per array; another group of array a sometimes holds it.
    const lab = Lab.create(
      { mode, period_ms: 500, batch_blocks_max: 1 + Math.floor(rnd() * 3), batches_inflight_max: 1 + Math.floor(rnd() * 2) },
      {},
      1,
    ).setUp()
    let other = false
    for (let i = 0; i < 300; i++) {
      const x = rnd()
      if (x < 0.45) lab.write(lab.a, rnd() < 0.5 ? 'v' : 'w', Math.floor(rnd() * BLOCKS), 1 + Math.floor(rnd() * 250))
      else if (x < 0.8) lab.deliverOne()
      else if (x < 0.88) lab.advance(Math.floor(rnd() * 400))
      else if (x < 0.92) lab.otherGroupResyncs(lab.a, (other = !other) === false)
      else if (x < 0.96 && lab.link) lab.linkDown()
      else if (!lab.link) lab.linkUp()
    }
    if (other) lab.otherGroupResyncs(lab.a, true)
    if (!lab.link) lab.linkUp()
    lab.run()
    if (mode === 'periodic') {
      lab.advance(500)
      lab.run()
    }
    permits_waited += lab.a.permits_waited
    const label = `${mode}: `
    if (
      lab.a.group.status().bytes_behind !== 0 ||
      lab.a.contents('v').join() !== lab.b.contents('v').join() ||
      lab.a.contents('w').join() !== lab.b.contents('w').join()
    ) {
      return `${label}copies differ: a=${lab.a.contents('v')}|${lab.a.contents('w')} b=${lab.b.contents('v')}|${lab.b.contents('w')}`
    }
    if (lab.a.acked.size + lab.a.failed.size !== lab.writeSeq)
      return `${label}${lab.writeSeq - lab.a.acked.size} host writes never answered`
    if (lab.a.limiter.running + lab.a.limiter.queued !== 0)
      return `${label}a resync permit was kept or is still waited for once the copies are equal`
    return null
  })
  t.equal(failures, 0, `${runs} seeded runs converged`)
  if (!SIM_SEEDS.fromEnv) t.ok(permits_waited > 0, `cycles did wait for a busy permit (${permits_waited} times)`)
})

// ------------------------------------------------------------------ link sessions, refused and stuck sync writes

const rcWrites = (lab: Lab): InFlight[] => lab.queue.filter((m) => m.message.t === 'rc-write')

t.test(
  'a sync primary restarted from its last record (kill -9) while its secondary stayed up: the next write is acknowledged and applied',
  async (t) => {
    const lab = Lab.create().setUp()
    for (let i = 0; i < 5; i++) lab.write(lab.a, 'v', i, 10 + i)
    lab.run()
    t.equal(lab.a.acked.size, 5, 'five writes replicated and acknowledged before the crash')
    const before = lab.a.group.status().incarnation!
    // kill -9 of a: its connection is gone (b sees the link drop); a restarts from what it had on disk
    lab.link = false
    lab.queue = []
    lab.step(lab.b, { kind: 'link-down' })
    const record = JSON.parse(JSON.stringify(lab.a.record)) as RcGroupRecord
    lab.a.group = RemoteCopyGroup.fromRecord(record, lab.a.journal)
    lab.a.timers = []
    lab.linkUp()
    lab.run()
    t.same(lab.states(lab.a), ['Synced', 'Synced'], 'the full comparison after the crash completed')
    t.ok(lab.a.group.status().incarnation! > before, 'the restarted primary runs a link session it never used before')
    const id = lab.write(lab.a, 'v', 6, 0x77)
    lab.run()
    t.ok(lab.a.acked.has(id), 'the first write after the restart is acknowledged')
    t.equal(lab.b.block('v', 6), 0x77, 'and the secondary has it')
    t.same(lab.b.contents('v'), lab.a.contents('v'))
  },
)

t.test('an rc-write of an earlier link session is refused with a nack and not written; the source ignores that nack', async (t) => {
  const lab = Lab.create().setUp()
  lab.write(lab.a, 'v', 1, 1)
  const stale = rcWrites(lab)[0]!
  lab.run()
  lab.linkDown() // a flap: both sides start new sessions
  lab.linkUp()
  lab.run()
  lab.write(lab.a, 'v', 1, 2)
  lab.run()
  const answer = lab.b.group.step({ kind: 'peer', message: stale.message, attachment: stale.attachment }, lab.now_ms)
  t.same(
    answer.map((e) => (e.kind === 'send' ? e.message.t : e.kind)),
    ['rc-write-nack'],
    'answered, and nothing else',
  )
  const nack = answer[0] as Extract<RcEffect, { kind: 'send' }>
  t.match(nack.message, { t: 'rc-write-nack', code: 'HVLAB_E_PROTOCOL', seq: (stale.message as { seq: number }).seq })
  t.equal(lab.b.block('v', 1), 2, 'the stale write was not applied')
  t.same(lab.a.group.step({ kind: 'peer', message: nack.message }, lab.now_ms), [], 'a nack of an earlier session changes nothing')
  t.same(lab.states(lab.a), ['Synced', 'Synced'])
})

t.test(
  'a refused rc-write is answered: the primary settles its waiting writes (acknowledged on it alone), shows NotSynced, then resyncs',
  async (t) => {
    const lab = Lab.create().setUp()
    const w1 = lab.write(lab.a, 'v', 1, 0x11)
    const w2 = lab.write(lab.a, 'v', 2, 0x22)
    lab.queue.reverse() // the partner gets seq 2 first, then seq 1 (out of order: refused)
    lab.deliverOne()
    lab.deliverOne()
    t.same(
      lab.queue.map((m) => m.message.t),
      ['rc-write-ack', 'rc-write-nack'],
      'the refusal is answered, not only logged',
    )
    t.equal(lab.b.block('v', 1), 0, 'the refused write was not applied')
    lab.deliverOne()
    t.ok(lab.a.acked.has(w2), 'the applied write is acknowledged')
    t.notOk(lab.a.acked.has(w1))
    lab.deliverOne() // the nack: the link counts as failed
    t.ok(lab.a.acked.has(w1), 'no_fail_wrt_on_err: the refused write is acknowledged on the primary alone')
    t.same(lab.states(lab.a), ['NotSynced', 'NotSynced'], 'NotSynced until the partner answers the new session')
    const st = lab.a.group.status(lab.now_ms)
    t.match(st, { link_failures_total: 1, last_link_failure: { code: 'HVLAB_E_PROTOCOL' }, sync_writes_waiting: 0, bytes_behind: BS })
    t.ok(lab.a.events.includes('rc.link-failed'), 'on the timeline')
    lab.run()
    t.same(lab.states(lab.a), ['Synced', 'Synced'], 'resynced once the partner answered')
    t.equal(lab.b.block('v', 1), 0x11, 'the refused write reached the secondary by the resync')
    const w3 = lab.write(lab.a, 'w', 0, 0x33)
    t.notOk(lab.a.acked.has(w3), 'synchronous again')
    lab.run()
    t.ok(lab.a.acked.has(w3))
    t.same(lab.b.contents('v'), lab.a.contents('v'))
  },
)

t.test('fail_wrt_on_err: a refused rc-write fails the host write, and writes are refused until the link is back', async (t) => {
  const lab = Lab.create({ write_error_policy: 'fail_wrt_on_err' }).setUp()
  const w1 = lab.write(lab.a, 'v', 1, 0x11)
  lab.write(lab.a, 'v', 2, 0x22)
  lab.queue.reverse()
  lab.deliverOne()
  lab.deliverOne()
  lab.deliverOne()
  lab.deliverOne()
  t.ok(lab.a.failed.has(w1), 'the refused write failed')
  t.throws(
    () => lab.write(lab.a, 'v', 3, 1),
    { code: 'HVLAB_E_REFUSED', message: /fail_wrt_on_err/ },
    'refused while the partner is not heard',
  )
  lab.run()
  t.same(lab.states(lab.a), ['Synced', 'Synced'])
  t.same(lab.b.contents('v'), lab.a.contents('v'), 'what the primary holds reached the secondary')
})

t.test(
  'a sync write past sync_write_timeout_ms fails the link: status is not Synced while it is stuck; it is settled and resynced',
  async (t) => {
    const lab = Lab.create({}, { sync_write_timeout_ms: 1000 }).setUp()
    const w = lab.write(lab.a, 'v', 4, 0x44)
    lab.queue = [] // the partner never answers
    const waiting = lab.a.group.status(lab.now_ms + 999)
    t.match(waiting, { sync_write_timeout_ms: 1000, sync_writes_waiting: 1, sync_writes_overdue: 0 })
    t.same(
      waiting.volumes.map((v) => v.state),
      ['Synced', 'Synced'],
      'within its bound a write in flight is normal',
    )
    const stuck = lab.a.group.status(lab.now_ms + 1000)
    t.equal(stuck.sync_writes_overdue, 1)
    t.same(
      stuck.volumes.map((v) => v.state),
      ['NotSynced', 'NotSynced'],
      'past its bound: NotSynced, even before the timer fires',
    )
    lab.advance(999)
    t.notOk(lab.a.acked.has(w), 'still waiting within the bound')
    lab.advance(1)
    t.ok(lab.a.acked.has(w), 'settled at the bound: acknowledged on the primary alone (no_fail_wrt_on_err)')
    t.match(lab.a.group.status(lab.now_ms), { last_link_failure: { code: 'HVLAB_E_TIMEOUT' }, sync_writes_waiting: 0 })
    t.same(lab.states(lab.a), ['NotSynced', 'NotSynced'])
    lab.run()
    t.same(lab.states(lab.a), ['Synced', 'Synced'])
    t.equal(lab.b.block('v', 4), 0x44, 'the stuck write reached the secondary by the resync')
  },
)

t.test('a partner that could not take an input starts a new session: the source settles what it had in flight and resyncs', async (t) => {
  const lab = Lab.create().setUp()
  const w = lab.write(lab.a, 'v', 5, 0x55)
  lab.step(lab.b, { kind: 'link-failed', code: 'HVLAB_E_BACKPRESSURE', reason: 'input queue full' })
  lab.run()
  t.ok(lab.a.acked.has(w), 'settled')
  t.same(lab.states(lab.a), ['Synced', 'Synced'])
  t.equal(lab.b.block('v', 5), 0x55)
  t.equal(lab.b.group.status().last_link_failure?.code, 'HVLAB_E_BACKPRESSURE', 'the failing side records why')
})
