/**
 * Live and quick migration in a host process: the host's MigrationService attached to
 * every host↔host mesh connection, the cluster's `vm-migrate-request` (the coordinator
 * asks the VM's owner to migrate it), arrivals admitted against the host's memory, lease
 * and the coordinator's epoch, the outcome reported to the coordinator, operator requests
 * (progress and result, cancel, guest load, inspect) and the timeline.
 *
 * In doubt (the link dropped while the destination was resuming): the source guest stays
 * paused and the host asks the destination over the mesh whether it runs the VM (its VM
 * inventory, with the migration's op). It runs there → release here, report success; it
 * answers it does not → the old link is closed, so no resume can still reach it: resume
 * here, report failure. No answer → keep asking; once the destination has been out of the
 * cluster view for `roles_free_after_ms` it has stopped its VMs, and the VM resumes here.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { MigrationOptionsMessage, MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { VmAgent, VmOpResult } from '../cluster/vm-agent.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'
import { VmInstance } from '../vm/vm-instance.js'
import { startGuestService } from '../vm/guest-service.js'
import { MigrationService, type MigrationResult } from './migration-service.js'
import { PageDiffPool } from './page-diff-pool.js'
import type { StorageHandOver } from './storage-hand-over.js'
import type { VmDiskTarget } from '../clx/disk-target.js'

const PAGES_PER_MIB = (1024 * 1024) / PAGE_SIZE_BYTES
export const IN_DOUBT_ASK_INTERVAL_MS = 1000
const IN_DOUBT_ASK_TIMEOUT_MS = 2000
/** Results kept for `vm migrate` to read (one per VM, the latest; bounded). */
const STATUS_KEPT_MAX = 256

export interface MigrationHostDeps {
  agent: VmAgent
  /** Is `node` in the cluster view now? */
  isMember(node: string): boolean
  holdsLease(now_ms: number): boolean
  roles_free_after_ms: number
  /** Tell the coordinator how migration `op` ended. */
  reportMigrated(r: { role: string; to: string; op: number; ok: boolean; reason: string }): void
  /** The storage step inside the blackout (CLX switchover across sites); default: CSV only. */
  storage?: StorageHandOver
  /** Before a migration starts: a promise that rejects to cancel it (CLX: group not Synced), or null when there is nothing to check. */
  checkStorage?(vm: string, source: string, to: string): Promise<void> | null
  /** Where an arriving VM's disk I/O goes here (null: no replicated disk). */
  diskForArrival?(vm: string): VmDiskTarget | null
}

interface MigrationStatus {
  ticket: string
  to: string
  mode: 'live' | 'quick'
  state: 'running' | 'done'
  migration_id: string | null
  stage: string
  round: number
  pages_left: number
  bandwidth_bytes_per_s: number
  expected_blackout_ms: number | null
  result: MigrationResultMessage | null
}

export interface MigrationHost {
  readonly service: MigrationService
  migrate(m: { role: string; to: string; op: number; epoch: number; options: MigrationOptionsMessage }): VmOpResult
  close(): Promise<void>
}

export function startMigrationHost(p: LabProcess, deps: MigrationHostDeps): MigrationHost {
  const { agent } = deps
  const log = p.log.child({ component: 'migration-host' })
  const hosts = new Set(p.topology.hosts.map((h) => h.name))
  const limits = p.topology.limits
  const pool = new PageDiffPool({ threads: limits.page_diff_threads })
  const statuses = new Map<string, MigrationStatus>()
  const byId = new Map<string, MigrationStatus>()
  /** MiB promised to VMs arriving now, by migration id. */
  const arriving = new Map<string, number>()

  const service = new MigrationService({
    host: p.name,
    log: p.log,
    pool,
    clock: p.clock,
    outgoing_max: limits.migrations_per_host,
    queue_max: limits.migrations_queued_per_host,
    incoming_max: limits.incoming_migrations_per_host,
    ...(deps.storage ? { storage: deps.storage } : {}),
    onEvent: (e) => {
      p.emitEvent(e.kind, e.details)
      const id = e.details.migration_id
      const st = typeof id === 'string' ? byId.get(id) : undefined
      if (st === undefined || st.state === 'done') return
      st.stage = e.kind.replace(/^migration\./, '')
      const num = (k: string): number | null => (typeof e.details[k] === 'number' ? (e.details[k] as number) : null)
      st.round = num('round') ?? st.round
      st.pages_left = num('pages_left') ?? st.pages_left
      st.bandwidth_bytes_per_s = num('rate_bytes_per_s') ?? st.bandwidth_bytes_per_s
      st.expected_blackout_ms = num('expected_blackout_ms') ?? st.expected_blackout_ms
    },
    admit: (a) => {
      if (a.placement === null)
        throw new HvlabError('HVLAB_E_REFUSED', `${p.name} takes only vms the cluster migrates (with a start op and epoch)`)
      if (!deps.holdsLease(p.clock.now()))
        throw new HvlabError('HVLAB_E_REFUSED', `${p.name} holds no quorum lease, so it may not take vm ${a.vm} now`)
      const mib = Math.ceil(a.page_count / PAGES_PER_MIB)
      let reserved = 0
      for (const v of arriving.values()) reserved += v
      agent.vms.checkArrival(a.vm, mib, a.placement.epoch, reserved)
      arriving.set(a.migration_id, mib)
    },
    onArrivalEnded: (a) => arriving.delete(a.migration_id),
    onArrived: (vm, a) => {
      arriving.delete(a.migration_id)
      const inst = VmInstance.arrived(vm.name, vm.memory, vm.deviceState(), p.clock)
      agent.adoptVm(inst, a.placement?.op ?? 0, a.placement?.epoch ?? 0, a.source)
      agent.setDisk(vm.name, deps.diskForArrival?.(vm.name) ?? null)
    },
    onDeparted: (vm, destination) => agent.releaseVm(vm.name, destination),
    // The VM's address now leads to this host (a gratuitous ARP), on the timeline; the virtual
    // switch learns it from the agent's vm-location, sent when it adopted the VM (onArrived, just before).
    onAnnounce: (vm, host) => p.emitEvent('vm.location', { vm, host, how: 'gratuitous-arp' }),
  })
  p.onPeer((conn) => {
    if (conn.remoteRole === 'host' && hosts.has(conn.remoteName)) service.attach(conn)
  })
  // The guest service answers the lab's virtual switch (pings from `hvlab vm ping`) for every VM here.
  const guests = startGuestService(p, (name) => agent.vms.instance(name))

  const remember = (vm: string, st: MigrationStatus): void => {
    statuses.delete(vm)
    statuses.set(vm, st)
    while (statuses.size > STATUS_KEPT_MAX) statuses.delete(statuses.keys().next().value as string)
  }

  /**
   * Checks the VM's storage first when a check applies (CLX across sites): the request is
   * taken at once and a refusal ends the migration as failed, the VM running here.
   */
  const migrate: MigrationHost['migrate'] = (m) => {
    const { role, to, op, options } = m
    const check = deps.checkStorage?.(role, p.name, to) ?? null
    if (check === null) return begin(m)
    const vm = agent.vms.instance(role)
    if (vm === undefined || vm.state !== 'running') return { ok: false, reason: `${p.name} does not run vm ${role}` }
    const st = runningStatus(options, to, vm.memory.page_count, 'storage-check')
    remember(role, st)
    const refuse = (reason: string): void => {
      st.result = refusedResult(role, options.mode, p.name, to, vm.memory.byte_length, reason)
      st.state = 'done'
      st.stage = 'failed'
      p.emitEvent('vm.migration-ended', { vm: role, to, mode: options.mode, outcome: 'failed', reason: reason.slice(0, 300) })
      deps.reportMigrated({ role, to, op, ok: false, reason: reason.slice(0, 500) })
    }
    check.then(
      () => {
        const r = begin(m)
        if (!r.ok) refuse(r.reason)
      },
      (e: unknown) => refuse(describeError(e)),
    )
    return { ok: true, reason: `checking the storage of vm ${role} before migrating it to ${to}` }
  }

  const begin: MigrationHost['migrate'] = ({ role, to, op, epoch, options }) => {
    const vm = agent.vms.instance(role)
    if (vm === undefined || vm.state !== 'running') return { ok: false, reason: `${p.name} does not run vm ${role}` }
    if (to === p.name) return { ok: false, reason: `vm ${role} already runs on ${to}` }
    const conn = p.mesh.connection(to)
    if (!conn?.isOpen) return { ok: false, reason: `${p.name} has no connection to ${to} now` }
    const st = runningStatus(options, to, vm.memory.page_count, 'queued')
    let handle
    try {
      handle = service.migrate(vm, conn, {
        placement: { op, epoch },
        verify: options.verify,
        ...(options.budget_ms !== null ? { downtime_budget_ms: options.budget_ms } : {}),
        ...(options.max_rounds !== null ? { round_cap: options.max_rounds } : {}),
      })
    } catch (e) {
      return { ok: false, reason: describeError(e) }
    }
    agent.setMigrating(role, true)
    // Quick migration: the guest stops now and stays down for the whole copy.
    const paused_ms = options.mode === 'quick' ? p.clock.now() : null
    if (paused_ms !== null) vm.pause()
    st.migration_id = handle.migration_id
    byId.set(handle.migration_id, st)
    remember(role, st)
    p.emitEvent('vm.migration-started', { vm: role, to, mode: options.mode, op, migration_id: handle.migration_id })
    void handle.result.then(async (r) => {
      let outcome = r
      let ok = r.outcome === 'completed'
      if (r.outcome === 'in_doubt') ok = await settleInDoubt(vm, role, to, op)
      if (!ok && r.outcome === 'in_doubt') outcome = { ...r, reason: `${r.reason}; ${to} does not run it, so it resumed on ${p.name}` }
      if (ok && r.outcome === 'in_doubt') outcome = { ...r, outcome: 'completed', reason: `${to} runs it (asked after the link dropped)` }
      agent.setMigrating(role, false)
      const downtime_ms = paused_ms === null ? null : Math.round(p.clock.now() - paused_ms)
      st.result = resultMessage(outcome, options.mode, downtime_ms)
      st.state = 'done'
      st.stage = outcome.outcome
      byId.delete(handle.migration_id)
      p.emitEvent('vm.migration-ended', {
        vm: role,
        to,
        mode: options.mode,
        outcome: outcome.outcome,
        total_ms: Math.round(r.total_ms),
        blackout_ms: r.blackout_ms,
        downtime_ms,
      })
      deps.reportMigrated({
        role,
        to,
        op,
        ok,
        reason: (ok ? `${options.mode} migration completed` : outcome.reason || outcome.outcome).slice(0, 500),
      })
    })
    return { ok: true, reason: `migrating vm ${role} to ${to}` }
  }

  /** Does `to` run the VM as op `op`? Asks until it answers or has surely stopped its VMs. */
  const settleInDoubt = async (vm: VmInstance, role: string, to: string, op: number): Promise<boolean> => {
    let out_since: number | null = null
    for (;;) {
      const conn = p.mesh.connection(to)
      if (conn?.isOpen) {
        try {
          const r = await conn.request({ t: 'vm-inventory-request', from: p.name }, { timeout_ms: IN_DOUBT_ASK_TIMEOUT_MS })
          if (r.message.t === 'vm-inventory-reply') {
            const runs = r.message.vms.some((v) => v.role === role && v.op === op)
            if (runs) agent.releaseVm(role, to)
            else vm.resume()
            p.emitEvent('vm.migration-settled', { vm: role, to, runs_on: runs ? to : p.name })
            return runs
          }
        } catch (e) {
          log.warn({ err: describeError(e), vm: role, to }, 'migration in doubt: the destination did not answer yet')
        }
      }
      const now = p.clock.now()
      out_since = deps.isMember(to) ? null : (out_since ?? now)
      if (out_since !== null && now - out_since >= deps.roles_free_after_ms) {
        vm.resume()
        p.emitEvent('vm.migration-settled', { vm: role, to, runs_on: p.name, reason: `${to} left the cluster and has stopped its vms` })
        return false
      }
      await new Promise((r) => setTimeout(r, IN_DOUBT_ASK_INTERVAL_MS))
    }
  }

  p.serveOperator('vm-migrate-cancel-request', (q): Message => {
    if (!service.cancel(q.vm))
      throw new HvlabError('HVLAB_E_NOT_FOUND', `${p.name} is not migrating vm ${q.vm}; \`hvlab vm list\` shows where it runs`)
    return { t: 'ok' }
  })
  p.serveOperator('vm-migration-status-request', (q): Message => {
    const st = statuses.get(q.vm)
    return {
      t: 'vm-migration-status-reply',
      vm: q.vm,
      host: p.name,
      state: st === undefined ? 'none' : st.state === 'done' ? 'done' : st.stage === 'queued' ? 'queued' : 'running',
      ticket: st?.ticket ?? null,
      to: st?.to ?? null,
      stage: st?.stage ?? '',
      round: st?.round ?? 0,
      pages_left: st?.pages_left ?? 0,
      bandwidth_bytes_per_s: st?.bandwidth_bytes_per_s ?? 0,
      expected_blackout_ms: st?.expected_blackout_ms ?? null,
      result: st?.result ?? null,
    }
  })
  p.serveOperator('vm-load-request', (q): Message => {
    const vm = agent.vms.instance(q.vm)
    if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `${p.name} does not run vm ${q.vm}`)
    const load = vm.setLoad({
      ...(q.dirty_mib_per_s !== undefined ? { dirty_mib_per_s: q.dirty_mib_per_s } : {}),
      ...(q.hot_fraction !== null ? { hot_fraction: q.hot_fraction } : {}),
      ...(q.disk_iops !== undefined ? { disk_iops: q.disk_iops } : {}),
    })
    p.emitEvent('vm.load', { vm: q.vm, dirty_mib_per_s: load.dirty_mib_per_s, hot_fraction: load.hot_fraction, disk_iops: load.disk_iops })
    return { t: 'ok' }
  })
  p.serveOperator('vm-inspect-request', async (q): Promise<Message> => {
    const vm = agent.vms.instance(q.vm)
    if (vm === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `${p.name} does not run vm ${q.vm}`)
    const memory_sha256 = await vm.memory.sha256Async()
    return {
      t: 'vm-inspect-reply',
      vm: q.vm,
      host: p.name,
      running: vm.state === 'running',
      paused: vm.paused,
      memory_mib: vm.memory_mib,
      memory_sha256,
      guest_heartbeats: vm.guestHeartbeats,
      dirty_mib_per_s: vm.load.dirty_mib_per_s,
      hot_fraction: vm.load.hot_fraction,
      resumes: vm.resumeCount,
      disk_iops: vm.load.disk_iops,
      disk: vm.diskCounters(),
    }
  })
  p.addStatus(() => ({ migrations: { ...service.outgoing, arriving: arriving.size } }))

  return {
    service,
    migrate,
    close: () => {
      guests.close()
      return pool.close()
    },
  }
}

/** The result of a migration the storage check cancelled before it began (nothing was sent). */
function refusedResult(
  vm: string,
  mode: 'live' | 'quick',
  source: string,
  destination: string,
  memory_bytes: number,
  reason: string,
): MigrationResultMessage {
  return {
    migration_id: 'storage-check',
    vm,
    mode,
    source,
    destination,
    outcome: 'failed',
    reason: reason.slice(0, 1024),
    total_ms: 0,
    blackout_ms: null,
    downtime_ms: null,
    expected_blackout_ms: null,
    switch_reason: null,
    memory_bytes,
    bytes_sent: 0,
    bytes_raw: 0,
    rounds: [],
    final_pages: 0,
    pages: { scanned: 0, skipped: 0, zero: 0, delta: 0, full: 0 },
    bandwidth_bytes_per_s: 0,
    dirty_rate_bytes_per_s: 0,
    throttle_pct_max: 0,
    source_sha256: null,
    destination_sha256: null,
  }
}

function resultMessage(r: MigrationResult, mode: 'live' | 'quick', downtime_ms: number | null): MigrationResultMessage {
  return {
    migration_id: r.migration_id,
    vm: r.vm,
    mode,
    source: r.source,
    destination: r.destination,
    outcome: r.outcome,
    reason: r.reason.slice(0, 1024),
    total_ms: Math.max(0, r.total_ms),
    blackout_ms: r.blackout_ms === null ? null : Math.max(0, r.blackout_ms),
    downtime_ms,
    expected_blackout_ms: r.expected_blackout_ms === null ? null : Math.max(0, r.expected_blackout_ms),
    switch_reason: r.switch_reason,
    memory_bytes: r.memory_bytes,
    bytes_sent: r.bytes_sent,
    bytes_raw: r.bytes_raw,
    rounds: r.rounds.slice(0, 1001).map((x) => ({
      round: x.round,
      dirty_pages: x.dirty_pages,
      bytes_sent: x.bytes_sent,
      duration_ms: Math.max(0, x.duration_ms),
      throttle_pct: x.throttle_pct,
    })),
    final_pages: r.final_pages,
    pages: { ...r.pages },
    bandwidth_bytes_per_s: Math.max(0, r.bandwidth_bytes_per_s),
    dirty_rate_bytes_per_s: Math.max(0, r.dirty_rate_bytes_per_s),
    throttle_pct_max: r.throttle_pct_max,
    source_sha256: r.source_sha256,
    destination_sha256: r.destination_sha256,
  }
}

/** The status of a migration that has just begun, at `stage`, with every page still to send. */
function runningStatus(
  options: Pick<MigrationStatus, 'ticket' | 'mode'>,
  to: string,
  page_count: number,
  stage: MigrationStatus['stage'],
): MigrationStatus {
  return {
    ticket: options.ticket,
    to,
    mode: options.mode,
    state: 'running',
    migration_id: null,
    stage,
    round: 0,
    pages_left: page_count,
    bandwidth_bytes_per_s: 0,
    expected_blackout_ms: null,
    result: null,
  }
}
