/**
 * The role layer on the simulated network: every host runs, next to its Membership, the
 * same VmAgent and RoleService the real host runs (agent/cluster/role-host.ts), with the
 * real lab's settings (cluster-config.ts from the topology: leases, roles_stop_bound_ms,
 * the no-quorum grace from noQuorumGraceMs). Their clocks are the simulation's; their
 * requests to each other travel over it (delayed, lost with a cut link, timed out like
 * ROLE_REQUEST_TIMEOUT_MS, in order per pair of hosts like one connection); the thin
 * request handlers of role-peer-requests.ts and host-requests.ts are mirrored here.
 *
 * RoleService works with promises, so the run loop is async: after a step that touched a
 * promise, it lets the microtasks run (at the same simulated instant) before checking.
 *
 * Checked after every step (`stepProblem`): at most one view holds quorum (checkSafety),
 * no VM runs on two hosts at once — a VM on a host without a lease (a zombie within its
 * grace) counts as running until that host stops it — and every running VM writes its
 * volume on a SimArray with its host's current epoch, which must never accept a write
 * older than one it accepted.
 */
import { membershipConfig } from '../../agent/cluster/cluster-config.js'
import { arbiterConfig } from '../../witness/arbiter-config.js'
import type { ClusterEvent } from '../../shared/consensus/cluster-effects.js'
import { DEFAULT_HEALTH_CHECK, scaledHealthCheck } from '../../agent/cluster/health-check.js'
import type { Membership } from '../../agent/cluster/membership.js'
import type { RoleCommand } from '../../agent/cluster/role-controller.js'
import { INVENTORY_INTERVAL_MS, ROLE_REQUEST_TIMEOUT_MS } from '../../agent/cluster/role-host.js'
import { RoleService, type HostRequests } from '../../agent/cluster/role-service.js'
import { VmAgent, noQuorumGraceMs, type VmOpResult } from '../../agent/cluster/vm-agent.js'
import { encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import type { VmRole, VmRoleSpec } from '../../agent/cluster/vm-role.js'
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError, isHvlabError } from '../../shared/errors.js'
import { loadTopology, type Topology } from '../../shared/topology.js'
import { checkSafety, convergenceProblem, type InvariantState } from './cluster-fixture.js'
import { SimNetwork, type NetworkOptions } from './network.js'
import { SimArray } from './sim-array.js'

export { INVENTORY_INTERVAL_MS }
const TRACE_KEPT_MAX = 80
const TRACED = /^(cluster\.(view-changed|quorum-lost|quorum-gained|forced-quorum)|role\.|vm\.|node\.)/

export interface RoleLabOptions {
  seed: number
  /** Default: the default lab's topology (topologies/two-site.json). */
  topology?: Topology
  net?: Partial<NetworkOptions>
  /** Replaces every host's no-quorum grace (only to show the checks catch a broken bound). */
  no_quorum_grace_ms?: number
}

/** What one incarnation of a host runs for the roles. */
export interface HostRoles {
  name: string
  membership: Membership
  agent: VmAgent
  service: RoleService
}

/** The simulation's clock as seen by one host incarnation (its own offset and drift): its timers die with it. */
class HostClock implements Clock {
  constructor(
    private readonly net: SimNetwork,
    private readonly host: string,
    private readonly incarnation: number,
  ) {}
  now(): number {
    return this.net.localNow(this.host)
  }
  setTimer(delay_ms: number, fn: () => void): () => void {
    return this.net.schedule(this.host, this.net.now_ms + Math.max(0, delay_ms), fn, this.incarnation)
  }
}

export function defaultTopology(): Topology {
  return loadTopology()
}

export class RoleLab {
  readonly net: SimNetwork
  readonly array = new SimArray()
  readonly topology: Topology
  readonly hosts = new Map<string, HostRoles>()
  /** The first violation seen, or null. */
  problem: string | null = null
  /** Check that no VM runs on two hosts (off only to watch the array fence a zombie). */
  check_two_hosts = true
  /** Refusals seen by expectRefusal, by error code. */
  readonly refusals = new Map<string, number>()
  /** Recent role and view events, for a failing seed's report. */
  readonly trace: string[] = []
  private readonly safety: InvariantState = { witness_epoch: 0, witness_db_epoch: 0 }
  private readonly views = new Map<number, string>()
  /** A promise was created or settled: let microtasks run before the next check. */
  private unsettled = false
  /** The last arrival time per direction, so requests and replies stay in order. */
  private readonly channel_at = new Map<string, number>()
  private readonly grace_ms: (tick_ms: number, bound_ms: number) => number

  constructor(readonly options: RoleLabOptions) {
    const t = options.topology ?? defaultTopology()
    this.topology = t
    const witness = t.quorum.model === 'node-and-file-share-majority' && t.witness ? arbiterConfig(t, t.witness.name) : null
    this.grace_ms = (tick_ms, bound_ms) => options.no_quorum_grace_ms ?? noQuorumGraceMs(bound_ms, tick_ms)
    this.net = new SimNetwork({
      seed: options.seed,
      hosts: t.hosts.map((h) => membershipConfig(t, h.name)),
      witness,
      delay_ms_min: 1,
      delay_ms_max: 15,
      spike_probability: 0,
      spike_ms_max: 0,
      loss_probability: 0,
      ...options.net,
    })
    this.net.onEvent = (e) => this.onClusterEvent(e)
    this.net.onHostStarted = (name) => this.attach(name)
    this.net.onHostKilled = (name) => this.hosts.delete(name)
    for (const h of t.hosts) this.attach(h.name)
  }

  // ---- running ---------------------------------------------------------------------

  /** Runs `duration_ms` of simulated time, checking after every step; returns the first problem (and stops there). */
  async runFor(duration_ms: number): Promise<string | null> {
    const until_ms = this.net.now_ms + duration_ms
    while (this.problem === null) {
      const r = this.net.stepNext(until_ms)
      if (r === 'none') break
      if (this.unsettled) await this.settle()
      // ??=: a problem found during the step (two views for one epoch, an unexpected error) stays.
      if (r === 'stepped') this.problem ??= this.stepProblem()
    }
    if (this.problem === null) {
      await this.settle()
      this.net.now_ms = until_ms
    }
    return this.problem
  }

  /** Runs until `done()` holds (checked every `poll_ms`) or `max_ms` passed; true if it held. */
  async runUntil(done: () => boolean, max_ms: number, poll_ms = 250): Promise<boolean> {
    const end_ms = this.net.now_ms + max_ms
    while (this.net.now_ms < end_ms) {
      if (done()) return true
      if ((await this.runFor(Math.min(poll_ms, end_ms - this.net.now_ms))) !== null) return false
    }
    return done()
  }

  private async settle(): Promise<void> {
    while (this.unsettled) {
      this.unsettled = false
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  // ---- the role layer of one host -------------------------------------------------------

  private attach(name: string): void {
    const membership = this.net.hosts.get(name)
    const me = this.topology.hosts.find((h) => h.name === name)
    if (!membership || !me) throw new Error(`cannot attach the role layer to ${name}: it is not running`)
    const c = membership.settings()
    const incarnation = this.net.incarnation(name)
    const clock = new HostClock(this.net, name, incarnation)
    const emitEvent = (kind: string, details: Record<string, unknown>): void => this.traceEvent(name, kind, details)
    let service: RoleService | undefined
    const agent = new VmAgent({
      host: name,
      memory_mib: me.memory_mib,
      clock,
      holdsLease: (now) => membership.holdsLease(now),
      leaseUntil: () => membership.leaseUntil(),
      check_interval_ms: c.tick_ms,
      no_quorum_grace_ms: this.grace_ms(c.tick_ms, c.roles_stop_bound_ms),
      health: scaledHealthCheck(DEFAULT_HEALTH_CHECK, this.topology.timeScale),
      emitEvent,
      reportFailure: (f) => {
        const coordinator = membership.view().coordinator
        if (coordinator === name) return service?.vmFailed(name, f.role, f.op, f.gone, f.reason)
        // coordinator-reports.ts logs a report that did not get through; the coordinator's next inventory finds the vm.
        this.request(name, incarnation, coordinator, (t) => t.service.vmFailed(name, f.role, f.op, f.gone, f.reason)).catch(
          this.expectRefusal(`${name}'s report that ${f.role} failed`),
        )
      },
    })
    const requests: HostRequests = {
      start: (node, r) =>
        node === name
          ? this.request(name, incarnation, node, (t) => t.agent.startVm(r.role, r.memory_mib, r.op, r.epoch, name))
          : this.request(name, incarnation, node, (t) => startRequest(t, name, r)),
      stop: (node, r) => this.request(name, incarnation, node, (t) => t.agent.stopVm(r.role, r.op, r.reason)),
      inventory: (node) => this.request(name, incarnation, node, (t) => t.agent.inventory()),
    }
    service = new RoleService({
      name,
      clock,
      hosts: this.topology.hosts.map((h) => ({ name: h.name, memory_mib: h.memory_mib })),
      membership,
      writeConfig: (key, value) => {
        // A killed incarnation's service writes nothing (its process is gone), and never through its successor.
        if (this.net.hosts.get(name) !== membership) return
        try {
          this.net.command(name, { kind: 'set-config', key, value })
        } catch (e) {
          // Refused while no cluster has formed yet (epoch 0) or after the host left:
          // role-service.ts logs it and writes it again later. Anything else is a bug.
          const refused = isHvlabError(e) && e.code === 'HVLAB_E_STATE' && (membership.view().epoch === 0 || membership.record().left)
          if (!refused) this.problem ??= `${name}: writing ${key} to the cluster database threw ${describeError(e)}`
        }
      },
      requests,
      emitEvent,
      log: { info: () => undefined, warn: () => undefined },
      tick_ms: c.tick_ms,
      inventory_interval_ms: INVENTORY_INTERVAL_MS,
      live_migration: false,
      time_scale: this.topology.timeScale,
    })
    this.hosts.set(name, { name, membership, agent, service })
    agent.start()
    service.start()
  }

  /**
   * A request from `from` (incarnation `inc`) to `to`, carried out there by `handle`: local
   * requests run in a microtask (like host-requests.ts's local()); remote ones need a link, are
   * delayed both ways, are lost if the link is cut or `to` restarts meanwhile, and time out.
   */
  private request<T>(from: string, inc: number, to: string, handle: (target: HostRoles) => T): Promise<T> {
    this.unsettled = true
    if (to === from) {
      return Promise.resolve().then(() => {
        const self = this.hosts.get(from)
        if (!self) throw new HvlabError('HVLAB_E_CLOSED', `${from} is not running`)
        return handle(self)
      })
    }
    const net = this.net
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const settle = (fn: () => void): void => {
        if (settled) return
        settled = true
        this.unsettled = true
        fn()
      }
      if (!net.isAlive(to) || !net.linked(from, to)) {
        return settle(() => reject(new HvlabError('HVLAB_E_CLOSED', `${from} has no connection to ${to} now`)))
      }
      const cancelTimeout = net.schedule(
        from,
        net.now_ms + ROLE_REQUEST_TIMEOUT_MS,
        () => settle(() => reject(new HvlabError('HVLAB_E_TIMEOUT', `${to} did not answer in time`))),
        inc,
      )
      const answer = (fn: () => void): void => {
        net.schedule(
          from,
          this.arrival(to, from),
          () => {
            if (!net.linked(from, to)) return
            cancelTimeout()
            settle(fn)
          },
          inc,
        )
      }
      net.schedule(to, this.arrival(from, to), () => {
        const target = this.hosts.get(to)
        if (!net.linked(from, to) || !target) return
        try {
          const result = handle(target)
          answer(() => resolve(result))
        } catch (e) {
          answer(() => reject(e instanceof HvlabError ? e : new HvlabError('HVLAB_E_INTERNAL', describeError(e))))
        }
      })
    })
  }

  /** When a request or reply sent now from `from` arrives at `to`: delayed, in order per direction (one connection). */
  private arrival(from: string, to: string): number {
    const o = this.net.options
    const key = `${from}>${to}`
    const at_ms = Math.max(
      this.net.now_ms + o.delay_ms_min + this.net.rng() * (o.delay_ms_max - o.delay_ms_min),
      this.channel_at.get(key) ?? 0,
    )
    this.channel_at.set(key, at_ms)
    return at_ms
  }

  // ---- operator ------------------------------------------------------------------------

  /**
   * The rejection handler for a request or an operator command that may be refused: an
   * HvlabError with a stable code is an answer (counted in `refusals` by code); anything
   * else — a TypeError, or HVLAB_E_INTERNAL wrapping one — is a bug, and the lab's problem.
   */
  expectRefusal(what: string): (e: unknown) => void {
    return (e) => {
      this.unsettled = true
      if (isHvlabError(e) && e.code !== 'HVLAB_E_INTERNAL') {
        this.refusals.set(e.code, (this.refusals.get(e.code) ?? 0) + 1)
        return
      }
      this.problem ??= `${what}: not a refusal with a stable code, but ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`
    }
  }

  /** The host running the roles (coordinator with the lease), if any. */
  leader(): HostRoles | undefined {
    for (const h of this.hosts.values()) if (h.service.running && h.service.isLeader()) return h
    return undefined
  }

  /** An operator command to the coordinator, as `hvlab vm …` would send it; resolves or rejects as the sim runs. */
  operate(command: RoleCommand): Promise<void> {
    const leader = this.leader()
    if (!leader) return Promise.reject(new HvlabError('HVLAB_E_STATE', 'no coordinator with quorum runs the roles now'))
    this.unsettled = true
    const p = leader.service.command(command)
    p.then(
      () => (this.unsettled = true),
      () => (this.unsettled = true),
    )
    return p
  }

  /**
   * Forms the cluster, creates the roles and starts them, and waits until each runs and
   * its record is in the replicated database; returns what did not happen, or null.
   */
  async startRoles(specs: readonly VmRoleSpec[], max_ms = 40_000): Promise<string | null> {
    const names = specs.map((s) => s.name)
    const deadline_ms = this.net.now_ms + max_ms
    const left = (): number => Math.max(0, deadline_ms - this.net.now_ms)
    if (!(await this.runUntil(() => convergenceProblem(this.net) === null && this.leader() !== undefined, left()))) {
      return this.problem ?? `no cluster formed: ${convergenceProblem(this.net) ?? 'no coordinator runs the roles'}`
    }
    const refused: string[] = []
    const send = (command: RoleCommand): void => void this.operate(command).catch((e: unknown) => refused.push(describeError(e)))
    for (const spec of specs) send({ op: 'create', spec })
    if (!(await this.runUntil(() => names.every((n) => this.roles()?.some((r) => r.name === n)) || refused.length > 0, left())))
      return this.problem ?? 'the roles were not created'
    for (const name of names) send({ op: 'start', name })
    const stored = (): boolean => {
      const config = this.leader()?.membership.database().config ?? {}
      return this.roles()?.every((r) => config[roleKey(r.name)] === encodeRole(r)) === true
    }
    if (!(await this.runUntil(() => refused.length > 0 || (this.rolesProblem(names) === null && stored()), left()))) {
      return this.problem ?? `the roles did not start: ${this.rolesProblem(names) ?? 'their records are not in the database'}`
    }
    return refused.length > 0 ? `an operator command was refused: ${refused[0]}` : null
  }

  /** Every role as the coordinator has it, or null without one. */
  roles(): VmRole[] | null {
    return this.leader()?.service.list() ?? null
  }

  /** Where each VM runs now, by the hosts' own VM lists. */
  placement(): Map<string, string[]> {
    const at = new Map<string, string[]>()
    for (const [host, h] of this.hosts) {
      for (const vm of h.agent.vms.list()) if (vm.state === 'running') at.set(vm.name, [...(at.get(vm.name) ?? []), host])
    }
    return at
  }

  // ---- checks ----------------------------------------------------------------------------

  /** The invariants after one step; null when they hold. */
  stepProblem(): string | null {
    const now = this.net.now_ms
    const quorum = checkSafety(this.net, this.safety)
    if (quorum) return quorum
    const runner = new Map<string, string>()
    for (const [host, h] of this.hosts) {
      // A frozen host (SIGSTOP) runs and writes nothing until it wakes; then it counts again.
      if (this.net.isPaused(host)) continue
      const epoch = h.membership.view().epoch
      const zombie = !h.membership.holdsLease(this.net.localNow(host))
      for (const vm of h.agent.vms.list()) {
        if (vm.state !== 'running') continue
        const other = runner.get(vm.name)
        if (other !== undefined && this.check_two_hosts)
          return `vm ${vm.name} runs on ${other} and ${host} at ${now.toFixed(0)} ms (${this.leaseWords(other)}; ${this.leaseWords(host)})`
        runner.set(vm.name, host)
        const fenced = this.array.write(now, vm.name, host, epoch, zombie)
        if (fenced) return fenced
      }
    }
    return null
  }

  private leaseWords(host: string): string {
    const h = this.hosts.get(host)
    if (!h) return `${host} down`
    const m = h.membership
    return `${host} epoch ${m.view().epoch}, ${m.holdsLease(this.net.localNow(host)) ? 'holds a lease' : `no lease since ${m.leaseUntil().toFixed(0)} ms`}`
  }

  /** Once faults stopped: every role the coordinator has is running, exactly once, where it says. */
  rolesProblem(names: readonly string[]): string | null {
    const leader = this.leader()
    if (!leader) return 'no coordinator with quorum runs the roles'
    const roles = leader.service.list() ?? []
    const at = this.placement()
    for (const name of names) {
      const role = roles.find((r) => r.name === name)
      if (!role) return `the coordinator ${leader.name} does not know vm ${name}`
      if (role.state !== 'running' || role.owner === null) return `vm ${name} is ${role.state} (${role.reason})`
      const hosts = at.get(name) ?? []
      if (hosts.length !== 1 || hosts[0] !== role.owner)
        return `vm ${name} is running on ${role.owner} by the coordinator, on [${hosts.join(', ')}] by the hosts`
    }
    for (const vm of at.keys()) if (!names.includes(vm)) return `a vm ${vm} runs that is no role`
    return null
  }

  /** One membership and every role running exactly once. */
  convergedProblem(names: readonly string[]): string | null {
    return convergenceProblem(this.net) ?? this.rolesProblem(names)
  }

  // ---- events --------------------------------------------------------------------------

  private onClusterEvent(e: ClusterEvent): void {
    if (e.kind === 'cluster.view-changed') {
      const d = e.details
      const epoch = d.epoch as number
      const key = JSON.stringify([d.members, d.voters, d.witness_vote, d.coordinator, d.forced])
      const seen = this.views.get(epoch)
      if (seen === undefined) this.views.set(epoch, key)
      else if (seen !== key) this.problem ??= `two different views decided for epoch ${epoch}: ${seen} and ${key}`
    }
    this.traceEvent(e.source, e.kind, e.details)
  }

  private traceEvent(source: string, kind: string, details: Record<string, unknown>): void {
    if (!TRACED.test(kind)) return
    const short = Object.entries(details)
      .filter(([k]) =>
        [
          'epoch',
          'members',
          'coordinator',
          'role',
          'vm',
          'vms',
          'node',
          'from',
          'to',
          'reason',
          'action',
          'roles_free_at_ms',
          'lease_until_ms',
        ].includes(k),
      )
      .map(([k, v]) => `${k}=${typeof v === 'number' ? Math.round(v) : Array.isArray(v) ? v.join(',') : String(v)}`)
      .join(' ')
    this.trace.push(`${this.net.now_ms.toFixed(0)} ${source} ${kind} ${short.slice(0, 200)}`)
    if (this.trace.length > TRACE_KEPT_MAX) this.trace.shift()
  }
}

/** role-peer-requests.ts's `vm-start-request` handler: a start from an older epoch than this host's view is stale. */
function startRequest(t: HostRoles, from: string, r: { role: string; op: number; epoch: number; memory_mib: number }): VmOpResult {
  const epoch = t.membership.view().epoch
  if (r.epoch < epoch) return { ok: false, reason: `${t.name} is at cluster epoch ${epoch}; a start from epoch ${r.epoch} is stale` }
  return t.agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from)
}
