/**
 * Transcript tests of one Remote Copy group (array-emulator/remote-copy-group.ts) on its
 * two arrays: test/sim/testdata/rc-group-*.txt script the inputs — host writes, verbs, the
 * link, message delivery, time, a kill -9 — and list every effect of every step (see
 * transcript.ts for the file format).
 *
 * The driver is the shell of remote-copy-service.ts in miniature, run as production runs
 * it: each array runs its group with resync permits from its own ResyncLimiter (a granted
 * permit is the group's next input, right after the step that asked); a `send-blocks`
 * marked compare sends only the blocks whose contents differ from the partner's copy, and
 * answers the batch itself (rc-blocks-ack of 0 blocks, the next input) when none differ.
 * Messages wait on one in-order link until `deliver`; `link down` loses what is in flight.
 * Blocks are 4 bytes, each written with one letter ('.' is a zero block), so a block list
 * and its data read as `[3] x`.
 *
 * Printed per step: `<time_ms> <array> <- <input>`, then each effect on its own line, in
 * the order the group returned them (`send` goes to the partner array).
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import {
  decodeBitmap,
  RemoteCopyGroup,
  type RcEffect,
  type RcGroupConfigInput,
  type RcGroupRecord,
  type RcInput,
  type RcVerb,
} from '../../array-emulator/remote-copy-group.js'
import { ResyncLimiter } from '../../array-emulator/resync-limiter.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { isHvlabError } from '../../shared/errors.js'
import { fields, fmt, refusal, transcriptTests, type TranscriptDriver } from './transcript.js'

const BS = 4
const GROUP = 'g'
const VERBS: readonly RcVerb[] = ['start', 'stop', 'sync', 'failover', 'recover', 'restore', 'reverse', 'switchover']

type Appended = Extract<RcEffect, { kind: 'persist-blocks' }>

/** One array: its group (with permits), volumes, snapshots, timers and journal. */
class ArraySide {
  group!: RemoteCopyGroup
  limiter!: ResyncLimiter
  readonly volumes = new Map<string, Buffer>()
  readonly snaps = { delta: new Map<string, Buffer>(), rollback: new Map<string, Buffer>() }
  timers: { at_ms: number; token: string; seq: number }[] = []
  record: RcGroupRecord | undefined
  journal: Appended[] = []
  /** Inputs the shell gives the group right after the current step (permits, locally answered batches). */
  next: { input: RcInput; text: string }[] = []
  constructor(readonly name: string) {}

  /** Runs `g` as remote-copy-service.ts adopts a group: with resync permits, in a fresh process. */
  adopt(g: RemoteCopyGroup): void {
    g.requireResyncPermits()
    this.group = g
    this.limiter = new ResyncLimiter()
    this.timers = []
    this.next = []
    this.snaps.delta.clear() // in memory: a restart loses it (the rollback snapshot is on disk)
  }

  blockData(volume: string, b: number): Buffer {
    return this.volumes.get(volume)!.subarray(b * BS, (b + 1) * BS)
  }
}

const letter = (byte: number): string => (byte === 0 ? '.' : String.fromCharCode(byte))
const letters = (data: Uint8Array): string => Array.from({ length: data.length / BS }, (_, i) => letter(data[i * BS]!)).join('')

/** [0-3,5] */
function blockList(blocks: readonly number[]): string {
  const runs: string[] = []
  let i = 0
  while (i < blocks.length) {
    let j = i
    while (j + 1 < blocks.length && blocks[j + 1] === blocks[j]! + 1) j++
    runs.push(j === i ? `${blocks[i]}` : `${blocks[i]}-${blocks[j]}`)
    i = j + 1
  }
  return `[${runs.join(',')}]`
}

function messageText(m: RcPeerMessage, attachment: Uint8Array | undefined): string {
  const att =
    attachment === undefined
      ? ''
      : m.t === 'rc-dirty-set'
        ? ` bitmap=${blockList(decodeBitmap(attachment, m.block_count))}`
        : ` data=${letters(attachment)}`
  if (m.t === 'rc-blocks') return `rc-blocks cycle=${m.cycle} batch=${m.batch} volume=${m.volume} ${blockList(m.block_list)}${att}`
  return `${m.t}${fields(m, ['t', 'group'])}${att}`
}

function recordText(r: RcGroupRecord): string {
  const vols = r.volumes.map((v) => {
    const runs = (rs: [number, number][]): number[] => rs.flatMap(([first, n]) => Array.from({ length: n }, (_, i) => first + i))
    return ` ${v.volume}={${v.synced_once ? 'synced_once ' : ''}dirty=${blockList(runs(v.dirty))} rollback=${blockList(runs(v.rollback))}${v.compare ? ' compare' : ''}}`
  })
  return `role=${r.role} started=${r.started} generation=${r.generation} incarnation=${r.incarnation ?? 0} seq=${r.seq} cycle_seq=${r.cycle_seq} last_sync_ms=${fmt(r.last_sync_ms)}${vols.join('')}${r.clean_shutdown ? ' clean_shutdown' : ''}`
}

interface Message {
  from: ArraySide
  to: ArraySide
  message: RcPeerMessage
  attachment: Uint8Array | undefined
}

/**
 * The driver. Inputs:
 *   group [mode=sync|periodic] [policy=no_fail_wrt_on_err|fail_wrt_on_err] [blocks=8]
 *         [period=<ms>] [timeout=<ms>] [batch=<blocks>] [inflight=<batches>] [auto_failover=true] [auto_recover=false]
 *         array a (primary) and array b (secondary), each with volume v
 *   link up | link down        the arrays connect (each gets link-up) or the link is cut (what is in flight is lost)
 *   <array> write <volume> <block> <letters>   a host write of one block per letter
 *   <array> admit <volume>
 *   <array> <verb> [force]     start, stop, sync, failover, recover, restore, reverse, switchover
 *   deliver [n]                the next n messages on the link (all, until it is quiet)
 *   advance <ms>               time passes; timers fire
 *   crash <array>              kill -9: the partner sees the link drop; the array restarts from its record
 *                              and the blocks appended after it (a fresh process: no link, no timers)
 *   status                     both arrays: role, link, volume states and contents
 */
class RcDriver implements TranscriptDriver {
  now_ms = 0
  private readonly a = new ArraySide('a')
  private readonly b = new ArraySide('b')
  private link = false
  private queue: Message[] = []
  private write_seq = 0
  private timer_seq = 0
  private out: string[] = []

  run(command: string, args: string[]): string[] {
    this.out = []
    const side = command === 'a' ? this.a : command === 'b' ? this.b : null
    if (side) this.onArray(side, args)
    else if (command === 'group') this.create(args)
    else if (command === 'link') this.setLink(args[0])
    else if (command === 'deliver') this.deliver(args[0] === undefined ? Infinity : Number(args[0]))
    else if (command === 'advance') this.advance(Number(args[0]))
    else if (command === 'crash') this.crash(this.array(args[0]))
    else if (command === 'status') this.status()
    else throw new Error(`unknown input ${command}`)
    return this.out
  }

  private array(name: string | undefined): ArraySide {
    if (name === 'a') return this.a
    if (name === 'b') return this.b
    throw new Error(`no array ${String(name)} (a or b)`)
  }

  private other(s: ArraySide): ArraySide {
    return s === this.a ? this.b : this.a
  }

  private create(args: string[]): void {
    const o = new Map(args.map((kv) => kv.split('=') as [string, string]))
    const blocks = Number(o.get('blocks') ?? 8)
    const config: Omit<RcGroupConfigInput, 'partner' | 'role'> = {
      group: GROUP,
      mode: (o.get('mode') ?? 'sync') as 'sync' | 'periodic',
      block_size_bytes: BS,
      write_error_policy: (o.get('policy') ?? 'no_fail_wrt_on_err') as 'no_fail_wrt_on_err' | 'fail_wrt_on_err',
      ...(o.has('period') ? { period_ms: Number(o.get('period')) } : {}),
      ...(o.has('batch') ? { batch_blocks_max: Number(o.get('batch')) } : {}),
      ...(o.has('inflight') ? { batches_inflight_max: Number(o.get('inflight')) } : {}),
      ...(o.has('auto_failover') ? { auto_failover: o.get('auto_failover') === 'true' } : {}),
      ...(o.has('auto_recover') ? { auto_recover: o.get('auto_recover') === 'true' } : {}),
    }
    const options = o.has('timeout') ? { sync_write_timeout_ms: Number(o.get('timeout')) } : {}
    this.a.adopt(new RemoteCopyGroup({ ...config, partner: 'b', role: 'primary' }, options))
    this.b.adopt(new RemoteCopyGroup({ ...config, partner: 'a', role: 'secondary' }, options))
    for (const s of [this.a, this.b]) s.volumes.set('v', Buffer.alloc(blocks * BS))
  }

  private onArray(s: ArraySide, args: string[]): void {
    const [verb, ...rest] = args
    if (verb === 'write') {
      const [volume, block, data] = rest
      if (volume === undefined || block === undefined || data === undefined) throw new Error('write <volume> <block> <letters>')
      const bytes = Buffer.concat([...data].map((c) => Buffer.alloc(BS, c === '.' ? 0 : c.charCodeAt(0))))
      const write_id = ++this.write_seq
      this.step(
        s,
        { kind: 'host-write', write_id, volume, block: Number(block), data: bytes },
        `write#${write_id} ${volume} ${block} ${data}`,
      )
    } else if (verb === 'admit') {
      const volume = rest[0]!
      this.step(s, { kind: 'admit', volume, remote_volume: volume, block_count: s.volumes.get(volume)!.length / BS }, `admit ${volume}`)
    } else {
      const force = rest[0] === 'force'
      if (!VERBS.includes(verb as RcVerb)) throw new Error(`unknown input ${String(verb)} for array ${s.name}`)
      this.step(s, { kind: 'command', verb: verb as RcVerb, force }, `${verb}${force ? ' force' : ''}`)
    }
  }

  private setLink(state: string | undefined): void {
    if (state === 'up') {
      this.link = true
      this.step(this.a, { kind: 'link-up' }, 'link-up')
      this.step(this.b, { kind: 'link-up' }, 'link-up')
    } else if (state === 'down') {
      this.link = false
      this.queue = []
      this.step(this.a, { kind: 'link-down' }, 'link-down')
      this.step(this.b, { kind: 'link-down' }, 'link-down')
    } else throw new Error('link up|down')
  }

  private deliver(n: number): void {
    for (let i = 0; i < Math.min(n, 10_000); i++) {
      const m = this.queue.shift()
      if (!m) return
      this.step(
        m.to,
        { kind: 'peer', message: m.message, ...(m.attachment ? { attachment: m.attachment } : {}) },
        `${m.from.name} ${messageText(m.message, m.attachment)}`,
      )
    }
    if (this.queue.length > 0 && n === Infinity) throw new Error('the link never went quiet')
  }

  private advance(ms: number): void {
    const end = this.now_ms + ms
    for (;;) {
      const due = [this.a, this.b]
        .flatMap((s) => s.timers.map((tm) => ({ s, tm })))
        .filter((x) => x.tm.at_ms <= end)
        .sort((x, y) => x.tm.at_ms - y.tm.at_ms || x.tm.seq - y.tm.seq)[0]
      if (!due) break
      due.s.timers = due.s.timers.filter((tm) => tm !== due.tm)
      this.now_ms = due.tm.at_ms
      this.step(due.s, { kind: 'timer', token: due.tm.token }, `timer ${due.tm.token}`)
    }
    this.now_ms = end
  }

  private crash(s: ArraySide): void {
    if (!s.record) throw new Error(`${s.name} has persisted no record yet`)
    const partner = this.other(s)
    const wasUp = this.link
    this.link = false
    this.queue = []
    if (wasUp) this.step(partner, { kind: 'link-down' }, 'link-down (the partner is gone)')
    const record = structuredClone(s.record)
    s.adopt(RemoteCopyGroup.fromRecord(record, s.journal))
    const st = s.group.status(this.now_ms)
    this.out.push(
      `${this.now_ms} ${s.name} restarted from its record: ${st.role} ${st.started ? 'started' : 'stopped'} incarnation=${st.incarnation} bytes_behind=${st.bytes_behind}`,
    )
  }

  /** One input, its effects in order, then the inputs the shell queued meanwhile. */
  private step(s: ArraySide, input: RcInput, text: string): void {
    this.out.push(`${this.now_ms} ${s.name} <- ${text}`)
    let effects: RcEffect[]
    try {
      effects = s.group.step(input, this.now_ms)
    } catch (e) {
      // A refusal changes nothing: the caller gets it (a host, the operator), or the shell logs it (the partner's message).
      if (!isHvlabError(e)) throw e
      this.out.push(`  ${refusal(e)}`)
      return
    }
    for (const e of effects) this.out.push(`  ${this.apply(s, e)}`)
    while (s.next.length > 0) {
      const n = s.next.shift()!
      this.step(s, n.input, n.text)
    }
  }

  private apply(s: ArraySide, e: RcEffect): string {
    const key = (v: string, b: number): string => `${v}:${b}`
    switch (e.kind) {
      case 'send':
        if (this.link) this.queue.push({ from: s, to: this.other(s), message: e.message, attachment: e.attachment })
        return `send ${messageText(e.message, e.attachment)}`
      case 'send-blocks':
        return `send-blocks cycle=${e.cycle} batch=${e.batch} volume=${e.volume} ${blockList(e.blocks)}${e.compare ? ' compare' : ''} -> ${this.sendBlocks(s, e)}`
      case 'write-local':
        e.blocks.forEach((b, i) => Buffer.from(e.data).copy(s.volumes.get(e.volume)!, b * BS, i * BS, (i + 1) * BS))
        return `write-local ${e.volume} ${blockList(e.blocks)} ${letters(e.data)}`
      case 'preserve':
        for (const b of e.blocks)
          if (!s.snaps[e.snapshot].has(key(e.volume, b))) s.snaps[e.snapshot].set(key(e.volume, b), Buffer.from(s.blockData(e.volume, b)))
        return `preserve ${e.snapshot} ${e.volume} ${blockList(e.blocks)}`
      case 'rollback':
        for (const b of e.blocks) s.snaps.rollback.get(key(e.volume, b))?.copy(s.volumes.get(e.volume)!, b * BS)
        return `rollback ${e.volume} ${blockList(e.blocks)}`
      case 'release':
        s.snaps[e.snapshot].clear()
        return `release ${e.snapshot}`
      case 'ack-host':
        return `ack-host write#${e.write_id}`
      case 'fail-host':
        return `fail-host write#${e.write_id} ${e.code}: ${e.reason}`
      case 'persist':
        s.record = e.record
        s.journal = []
        return `persist ${recordText(e.record)}`
      case 'persist-blocks':
        s.journal.push(e)
        return `persist-blocks ${e.set} ${e.volume} ${blockList(e.blocks)}`
      case 'set-timer':
        s.timers.push({ at_ms: e.at_ms, token: e.token, seq: ++this.timer_seq })
        return `set-timer ${e.token} at=${e.at_ms}`
      case 'emit':
        return `emit ${e.event}${fields(e.details, ['group'])}`
      case 'request-resync-permit':
        if (s.limiter.request(GROUP)) s.next.push({ input: { kind: 'resync-permit' }, text: 'resync-permit' })
        return 'request-resync-permit'
      case 'release-resync-permit':
        for (const g of s.limiter.release(GROUP)) if (g === GROUP) s.next.push({ input: { kind: 'resync-permit' }, text: 'resync-permit' })
        return 'release-resync-permit'
    }
  }

  /** What the shell does with a send-blocks: compare with the partner's copy, send what differs. */
  private sendBlocks(s: ArraySide, e: Extract<RcEffect, { kind: 'send-blocks' }>): string {
    const partner = this.other(s)
    const data = (b: number): Buffer => s.snaps.delta.get(`${e.volume}:${b}`) ?? s.blockData(e.volume, b)
    let blocks = e.blocks
    if (e.compare && this.link) {
      const theirs = partner.volumes.get(e.remote_volume)
      blocks = e.blocks.filter((b) => !theirs || !data(b).equals(theirs.subarray(b * BS, (b + 1) * BS)))
      if (blocks.length === 0) {
        const ack: RcPeerMessage = { t: 'rc-blocks-ack', group: e.group, cycle: e.cycle, batch: e.batch, blocks: 0 }
        s.next.push({ input: { kind: 'peer', message: ack }, text: `(here) ${messageText(ack, undefined)}` })
        return 'none differ, answered here'
      }
    }
    const attachment = Buffer.concat(blocks.map(data))
    const message: RcPeerMessage = {
      t: 'rc-blocks',
      group: e.group,
      cycle: e.cycle,
      batch: e.batch,
      volume: e.remote_volume,
      block_list: blocks,
    }
    if (!this.link) return 'not sent (link down)'
    this.queue.push({ from: s, to: partner, message, attachment })
    return `send rc-blocks ${blockList(blocks)} data=${letters(attachment)}`
  }

  private status(): void {
    for (const s of [this.a, this.b]) {
      const st = s.group.status(this.now_ms)
      const vols = st.volumes.map((v) => ` ${v.volume}=${v.state}:${letters(s.volumes.get(v.volume)!)}`).join('')
      const sync = st.sync_writes_waiting === undefined ? '' : ` sync_writes_waiting=${st.sync_writes_waiting}`
      this.out.push(
        `${s.name} ${st.role} ${st.started ? 'started' : 'stopped'} link=${st.link_up ? 'up' : 'down'} partner=${st.partner_role ?? '-'} generation=${st.generation} incarnation=${st.incarnation} bytes_behind=${st.bytes_behind}${sync}${vols}`,
      )
    }
  }
}

transcriptTests(t, fileURLToPath(new URL('./testdata/', import.meta.url)), 'rc-group-', () => new RcDriver())
