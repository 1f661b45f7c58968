/**
 * Transcript tests of the cluster membership (agent/cluster/membership.ts) and the
 * witness (witness/arbiter.ts): test/sim/testdata/membership-*.txt script the inputs —
 * time passing, hosts stopping, partitions, operator commands — and list every effect
 * each step gave (see transcript.ts for the file format).
 *
 * The driver is a deterministic network: every message arrives `delay` ms after it was
 * sent (in order), timers fire at their time, a stopped host gets and sends nothing, a
 * partition drops what crosses it. Printed per step that has something to show:
 *
 *   <time_ms> <node> <- <input>         the input: tick, `<from> <message type>`, command …
 *     send <to> <type> <fields…>        an effect, in the order the machine returned them
 *     persist <record summary>
 *     emit <event kind> <details…>
 *
 * Heartbeats and tick timers are routine and not shown (a step whose only effects are
 * those prints nothing); `> run <ms> events` shows only emitted events.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import type { AcceptorRecord } from '../../shared/consensus/acceptor.js'
import type { ClusterCommand, ClusterInput, Effect } from '../../shared/consensus/cluster-effects.js'
import type { QuorumModel } from '../../agent/cluster/quorum.js'
import { Membership, type MembershipConfig, type NodeRecord } from '../../agent/cluster/membership.js'
import type { ClusterMessage } from '../../shared/protocol/cluster-messages.js'
import { clusterMessages } from '../../shared/protocol/cluster-messages.js'
import { Arbiter, type ArbiterConfig } from '../../witness/arbiter.js'
import { isHvlabError } from '../../shared/errors.js'
import { hostConfig } from './cluster-fixture.js'
import { fields, fmt, refusal, transcriptTests, type TranscriptDriver } from './transcript.js'

type AnyEffect = Effect<NodeRecord> | Effect<AcceptorRecord>

interface Queued {
  at_ms: number
  seq: number
  to: string
  incarnation: number
  input: ClusterInput
  from: string | null
}

function acceptorText(a: AcceptorRecord): string {
  const lease = a.lease_epoch === 0 ? '-' : `${a.lease_epoch}@${a.lease_until_ms}`
  const accepted = a.accepted ? `${fmt(a.accepted.ballot)}:epoch${a.accepted.value.view.epoch}` : '-'
  return `committed=${a.committed_epoch} db_epoch=${a.db_epoch} promised=${fmt(a.promised)} accepted=${accepted} lease=${lease}`
}

function recordText(r: NodeRecord | AcceptorRecord): string {
  if ('view' in r)
    return `view=${r.view.epoch} db=${r.db.db_epoch} ${acceptorText(r.acceptor)} ballot_n=${r.ballot_n}${r.left ? ' left' : ''}`
  return acceptorText(r)
}

function effectText(e: AnyEffect): string | null {
  switch (e.kind) {
    case 'send':
      if (e.message.t === 'cluster-heartbeat') return null
      return `send ${e.to} ${e.message.t}${fields(e.message, ['t', 'from'])}`
    case 'set-timer':
      return null // the tick timer, every tick_ms
    case 'persist':
      return `persist ${recordText(e.record)}`
    case 'emit':
      return `emit ${e.event.kind}${fields(e.event.details, [])}`
  }
}

function inputText(q: Queued): string {
  const i = q.input
  if (i.kind === 'timer') return i.token
  if (i.kind === 'command') return `command ${i.command.kind}${fields(i.command, ['kind'])}`
  return `${q.from} ${i.message.t}`
}

function validate(message: ClusterMessage): void {
  const def = clusterMessages.find((d) => d.t === message.t)
  const r = def?.schema.safeParse(message)
  if (!r?.success) throw new Error(`invalid ${message.t}: ${JSON.stringify(r?.error.issues[0] ?? 'undeclared type')}`)
}

/**
 * The cluster driver. Inputs:
 *   cluster <host>@<site>… [witness=<name>] [model=node-majority|node-and-file-share-majority]
 *           [dynamic_quorum=true|false] [dynamic_witness=true|false] [delay=<ms>]
 *   run <ms> [events]        time passes: timers fire, messages arrive
 *   stop <host>              the host's process stops (what it persisted stays)
 *   start <host>             it starts again from its record
 *   partition <a> <b> | <c>…  only nodes in one group talk (a node in no group talks to nobody)
 *   heal
 *   command <host> <kind> [key] [value]   an operator command (force-quorum, pause, resume, leave, set-config)
 *   status                   each host's view and lease
 */
class ClusterDriver implements TranscriptDriver {
  now_ms = 0
  private delay_ms = 5
  private configs = new Map<string, MembershipConfig>()
  private hosts = new Map<string, Membership | null>()
  private records = new Map<string, NodeRecord>()
  private witness: { config: ArbiterConfig; arbiter: Arbiter | null; record: AcceptorRecord | undefined } | null = null
  private incarnations = new Map<string, number>()
  private queue: Queued[] = []
  private seq = 0
  private groups: string[][] | null = null
  private out: string[] = []
  private events_only = false

  run(command: string, args: string[]): string[] {
    this.out = []
    switch (command) {
      case 'cluster':
        this.create(args)
        break
      case 'run':
        this.events_only = args[1] === 'events'
        this.runFor(Number(args[0]))
        this.events_only = false
        break
      case 'stop':
        this.stop(this.name(args[0]))
        break
      case 'start':
        this.start(this.name(args[0]))
        break
      case 'partition':
        this.groups = args
          .join(' ')
          .split('|')
          .map((g) => g.trim().split(/\s+/).filter(Boolean))
        break
      case 'heal':
        this.groups = null
        break
      case 'command':
        this.command(this.name(args[0]), args.slice(1))
        break
      case 'status':
        this.status()
        break
      default:
        throw new Error(`unknown input ${command}`)
    }
    return this.out
  }

  private name(n: string | undefined): string {
    if (n === undefined || !(this.hosts.has(n) || n === this.witness?.config.name)) throw new Error(`no host or witness named ${String(n)}`)
    return n
  }

  private create(args: string[]): void {
    const opts = new Map<string, string>()
    const sites: Record<string, string> = {}
    for (const a of args) {
      const kv = /^([a-z_]+)=(.*)$/.exec(a)
      if (kv) opts.set(kv[1]!, kv[2]!)
      else {
        const [host, site] = a.split('@')
        sites[host!] = site ?? 'site-a'
      }
    }
    const witness = opts.get('witness') ?? null
    const model = (opts.get('model') ?? (witness ? 'node-and-file-share-majority' : 'node-majority')) as QuorumModel
    const quorum = {
      model,
      dynamic_quorum: opts.get('dynamic_quorum') !== 'false',
      dynamic_witness: opts.get('dynamic_witness') !== 'false',
    }
    this.delay_ms = Number(opts.get('delay') ?? 5)
    for (const host of Object.keys(sites)) {
      const c = hostConfig(host, sites, quorum, witness)
      this.configs.set(host, c)
      this.hosts.set(host, null)
      this.incarnations.set(host, 0)
    }
    const c0 = this.configs.values().next().value!
    if (witness) {
      this.witness = {
        config: {
          name: witness,
          nodes: Object.keys(sites),
          lease_ms: c0.lease_ms,
          clock_skew_ms: c0.clock_skew_ms,
          renew_interval_ms: c0.renew_interval_ms,
        },
        arbiter: null,
        record: undefined,
      }
      this.witness.arbiter = new Arbiter(this.witness.config, this.now_ms)
      this.incarnations.set(witness, 0)
    }
    for (const host of Object.keys(sites)) this.start(host)
  }

  private stop(name: string): void {
    this.incarnations.set(name, this.incarnations.get(name)! + 1)
    if (name === this.witness?.config.name) this.witness.arbiter = null
    else this.hosts.set(name, null)
  }

  private start(name: string): void {
    if (name === this.witness?.config.name) {
      if (this.witness.arbiter) return
      this.incarnations.set(name, this.incarnations.get(name)! + 1)
      this.witness.arbiter = new Arbiter(this.witness.config, this.now_ms, this.witness.record)
      return
    }
    if (this.hosts.get(name)) return
    this.incarnations.set(name, this.incarnations.get(name)! + 1)
    const rec = this.records.get(name)
    const m = rec
      ? Membership.restore(this.configs.get(name)!, rec, this.now_ms)
      : new Membership(this.configs.get(name)!, null, this.now_ms)
    this.hosts.set(name, m)
    this.apply(name, `${this.now_ms} ${name} <- start`, m.start(this.now_ms))
  }

  private command(name: string, args: string[]): void {
    const host = this.hosts.get(name)
    if (!host) throw new Error(`${name} is not running`)
    const [kind, key, value] = args
    const command = (
      kind === 'set-config' ? { kind, key: key!, value: value === undefined || value === '-' ? null : value } : { kind }
    ) as ClusterCommand
    const header = `${this.now_ms} ${name} <- command ${args.join(' ')}`
    let effects: AnyEffect[]
    try {
      effects = host.step({ kind: 'command', command }, this.now_ms)
    } catch (e) {
      if (!isHvlabError(e)) throw e
      this.out.push(header, `  ${refusal(e)}`)
      return
    }
    this.apply(name, header, effects)
  }

  private runFor(duration_ms: number): void {
    if (!Number.isFinite(duration_ms) || duration_ms < 0) throw new Error('run takes a duration in ms')
    const until_ms = this.now_ms + duration_ms
    for (;;) {
      this.queue.sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)
      const next = this.queue[0]
      if (!next || next.at_ms > until_ms) break
      this.queue.shift()
      this.now_ms = next.at_ms
      if (this.incarnations.get(next.to) !== next.incarnation) continue
      const header = `${this.now_ms} ${next.to} <- ${inputText(next)}`
      if (next.to === this.witness?.config.name) {
        const w = this.witness.arbiter
        if (w) this.apply(next.to, header, w.step(next.input, this.now_ms))
        continue
      }
      const host = this.hosts.get(next.to)
      if (host) this.apply(next.to, header, host.step(next.input, this.now_ms))
    }
    this.now_ms = until_ms
  }

  private linked(a: string, b: string): boolean {
    return a === b || this.groups === null || this.groups.some((g) => g.includes(a) && g.includes(b))
  }

  private push(to: string, at_ms: number, input: ClusterInput, from: string | null): void {
    this.queue.push({ at_ms, seq: this.seq++, to, incarnation: this.incarnations.get(to) ?? 0, input, from })
  }

  private apply(from: string, header: string, effects: AnyEffect[]): void {
    const lines: string[] = []
    for (const e of effects) {
      if (e.kind === 'persist') {
        if (from === this.witness?.config.name) this.witness.record = e.record as AcceptorRecord
        else this.records.set(from, e.record as NodeRecord)
      } else if (e.kind === 'set-timer') {
        this.push(from, e.at_ms, { kind: 'timer', token: e.token }, null)
      } else if (e.kind === 'send') {
        validate(e.message)
        if (this.linked(from, e.to)) this.push(e.to, this.now_ms + this.delay_ms, { kind: 'message', message: e.message }, from)
      }
      const text = this.events_only && e.kind !== 'emit' ? null : effectText(e)
      if (text !== null) lines.push(`  ${text}`)
    }
    if (lines.length > 0) this.out.push(header, ...lines)
  }

  private status(): void {
    for (const [name, h] of this.hosts) {
      if (!h) {
        this.out.push(`${name} stopped`)
        continue
      }
      const v = h.view()
      const lease = h.holdsLease(this.now_ms) ? `lease until ${h.leaseUntil()}` : 'no lease'
      this.out.push(
        `${name} epoch=${v.epoch} members=${fmt(v.members)} voters=${fmt(v.voters)} witness_vote=${v.witness_vote} coordinator=${v.coordinator}${v.forced ? ' forced' : ''} db=${fmt(h.database())} ${lease}`,
      )
    }
    const w = this.witness
    if (w) this.out.push(w.arbiter ? `${w.config.name} ${acceptorText(w.arbiter.record())}` : `${w.config.name} stopped`)
  }
}

transcriptTests(t, fileURLToPath(new URL('./testdata/', import.meta.url)), 'membership-', () => new ClusterDriver())
