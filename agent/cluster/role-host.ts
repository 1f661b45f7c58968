/**
 * Puts VM roles into a host process: the host's VmAgent (runs VMs, answers the
 * coordinator, health checks, stops its VMs after the no-quorum grace), the RoleService
 * (runs the roles while this host is the coordinator with quorum), the role requests
 * between hosts, the operator requests (`role-command-request`, `role-list-request`,
 * forwarded to the coordinator by whichever host the CLI asked), and `vms` / `roles` in
 * GET /status.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type {
  InventoryVmRecord,
  MigrationOptionsMessage,
  RoleCommandMessage,
  VmRoleRecord,
} from '../../shared/protocol/cluster-messages.js'
import { startMigrationHost } from '../migration/migration-host.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import type { PeerConnection } from '../../shared/transport/peer-connection.js'
import type { ClusterService } from './cluster-service.js'
import { DEFAULT_HEALTH_CHECK, scaledHealthCheck } from './health-check.js'
import type { RoleCommand } from './role-controller.js'
import { decodeRoles } from './role-record.js'
import { RoleService, type HostRequests } from './role-service.js'
import { VmAgent, noQuorumGraceMs, type VmOpResult } from './vm-agent.js'
import { meshArrayAdmin } from '../clx/array-admin.js'
import { checkBeforeMigration, clxStorageHandOver } from '../clx/clx-hand-over.js'
import { ClxService, CLX_STATUS_TIMEOUT_MS_DEFAULT, CLX_VERB_TIMEOUT_MS_DEFAULT, CLX_WRITABLE_WAIT_MS_DEFAULT } from '../clx/clx-service.js'
import { arrayOfSite, csvDiskTarget, diskTargetFor, type VmDiskTarget } from '../clx/disk-target.js'
import { meshBlockIoPort } from '../vm/vm-disk.js'
import { csvDiskPort } from '../csv/csv-disk-port.js'
import type { CsvHost } from '../csv/csv-host.js'
import { preferredSiteOf } from '../../shared/vm-storage-choice.js'
import { provisionVmDisk, vmStorageContext } from '../clx/vm-storage.js'
import type { VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import { checkFitsAHost, createVmRole } from './vm-role.js'
import { serveGuestHang } from '../vm/guest-hang-requests.js'

export const ROLE_REQUEST_TIMEOUT_MS = 3000
/** A start may first have CLX make the VM's disk writable here (status, verb, wait for writable). */
export const START_REQUEST_TIMEOUT_MS = CLX_STATUS_TIMEOUT_MS_DEFAULT * 2 + CLX_VERB_TIMEOUT_MS_DEFAULT * 2 + CLX_WRITABLE_WAIT_MS_DEFAULT
/** A create may first provision the VM's replicated disk on both arrays. */
export const CREATE_REQUEST_TIMEOUT_MS = 60_000
/** How long the coordinator waits for an owner to take (not finish) a migration request. */
export const MIGRATE_REQUEST_TIMEOUT_MS = 5000
const REPORT_RETRY_MS = 1000
const REPORT_ATTEMPTS_MAX = 30
/** How long an operator request waits for a coordinator with quorum (a view change takes ~1 s). */
export const OPERATOR_WAIT_MS = 8000
const INVENTORY_INTERVAL_MS = 3000

export interface RoleHost {
  agent: VmAgent
  service: RoleService
}

export function startRoleHost(p: LabProcess, cluster: ClusterService, csv: CsvHost): RoleHost {
  const log = p.log.child({ component: 'roles' })
  const m = cluster.membership
  const c = m.settings()
  const me = p.topology.hosts.find((h) => h.name === p.name)
  if (me === undefined) throw new HvlabError('HVLAB_E_TOPOLOGY', `${p.name} is not a host of the topology`)

  const coordinatorConnection = (node: string): PeerConnection => {
    const conn = p.mesh.connection(node)
    if (!conn?.isOpen) throw new HvlabError('HVLAB_E_CLOSED', `${p.name} has no connection to ${node} now`)
    return conn
  }
  const ask = async <T extends Message['t']>(
    node: string,
    message: Message,
    expect: T,
    timeout_ms = ROLE_REQUEST_TIMEOUT_MS,
  ): Promise<MessageOf<T>> => {
    const r = await coordinatorConnection(node).request(message, { timeout_ms })
    if (r.message.t !== expect) throw new HvlabError('HVLAB_E_PROTOCOL', `${node} answered ${r.message.t}, expected ${expect}`)
    return r.message as MessageOf<T>
  }

  let service: RoleService | undefined
  const arrayPort = meshBlockIoPort(p.mesh)
  const agent = new VmAgent({
    host: p.name,
    memory_mib: me.memory_mib,
    clock: p.clock,
    holdsLease: (now) => m.holdsLease(now),
    leaseUntil: () => m.leaseUntil(),
    check_interval_ms: c.tick_ms,
    no_quorum_grace_ms: noQuorumGraceMs(c.roles_stop_bound_ms, c.tick_ms),
    health: scaledHealthCheck(DEFAULT_HEALTH_CHECK, p.topology.timeScale),
    emitEvent: (kind, details) => p.emitEvent(kind, details),
    announce: (location) => p.announceVm(location),
    blockIoFor: (target: VmDiskTarget) => (target.csv ? csvDiskPort(csv.volume(target.csv.name), target.csv.region) : arrayPort),
    writerEpoch: () => m.view().epoch,
    reportFailure: (f) => {
      const coordinator = m.view().coordinator
      if (coordinator === p.name) return service?.vmFailed(p.name, f.role, f.op, f.gone, f.reason)
      ask(coordinator, { t: 'vm-failed-report', from: p.name, ...f }, 'ok').catch((e: unknown) =>
        log.warn({ err: describeError(e), role: f.role }, 'could not report a failed vm to the coordinator; its next inventory finds it'),
      )
    },
  })

  // Cluster Extension: one per host; makes a VM's remote-copy group writable in this site before it runs here.
  const clx = new ClxService({
    host: p.name,
    arrays: p.topology.arrays,
    admin: meshArrayAdmin(p.mesh),
    clock: p.clock,
    emit: (kind, details) => p.emitEvent(kind, details),
  })
  const siteOf = (host: string): string | undefined => p.topology.hosts.find((h) => h.name === host)?.site
  /** A VM's disk from this host's copy of the cluster database (committed at create, long before any migration). */
  const storageOf = (vm: string): VmStorageSpecRecord | null =>
    decodeRoles(m.database().config).roles.find((r) => r.name === vm)?.storage ?? null
  const clxMigration = {
    clx,
    quiesce: async (vm: string) => {
      await agent.vms.instance(vm)?.disk?.pause()
    },
    siteOf,
    storageOf,
    onSwitched: (vm: string, site: string, result: { array: string; group: string }) => {
      const spec = storageOf(vm)
      if (spec?.kind === 'replicated' && site === p.site) agent.setDisk(vm, diskTargetFor(spec, result))
    },
  }
  /** Starts and stops of one VM run in the order received, even while a start waits for CLX. */
  const inOrder = perVmOrder()
  type StartRequest = {
    role: string
    op: number
    epoch: number
    memory_mib: number
    storage?: VmStorageSpecRecord | null | undefined
    force_storage?: boolean | undefined
  }
  const startHere = (r: StartRequest, from: string): Promise<VmOpResult & { storage_refused?: boolean }> =>
    inOrder(r.role, async () => {
      const spec = r.storage ?? null
      if (spec?.kind === 'csv') return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from, csvDiskTarget(spec)) // every node writes a CSV: nothing to prepare
      if (spec?.kind !== 'replicated') return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from)
      try {
        const prepared = await clx.prepareForStart(r.role, spec.group, p.site, { force: r.force_storage === true })
        return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from, diskTargetFor(spec, prepared))
      } catch (e) {
        log.warn({ err: describeError(e), role: r.role }, 'CLX did not make the disk writable here; the start fails')
        return { ok: false, reason: describeError(e), storage_refused: e instanceof HvlabError && e.code === 'HVLAB_E_REFUSED' }
      }
    })
  const stopHere = (role: string, op: number, reason: string): Promise<VmOpResult> =>
    inOrder(role, async () => agent.stopVm(role, op, reason))

  const migration = startMigrationHost(p, {
    agent,
    storage: clxStorageHandOver(clxMigration),
    checkStorage: (vm, source, to) => checkBeforeMigration(clxMigration, vm, source, to),
    diskForArrival: (vm) => {
      const spec = storageOf(vm)
      if (spec?.kind === 'csv') return csvDiskTarget(spec)
      const array = arrayOfSite(p.topology.arrays, p.site)
      return spec?.kind === 'replicated' && array !== undefined ? diskTargetFor(spec, { array, group: spec.group }) : null
    },
    isMember: (node) => m.view().members.includes(node),
    holdsLease: (now) => m.holdsLease(now),
    roles_free_after_ms: c.clock_skew_ms + c.roles_stop_bound_ms,
    reportMigrated: (r) => {
      const send = async (): Promise<void> => {
        const coordinator = m.view().coordinator
        if (coordinator === p.name) return service?.vmMigrated(p.name, r.role, r.to, r.op, r.ok, r.reason)
        await ask(coordinator, { t: 'vm-migrated-report', from: p.name, ...r }, 'ok')
      }
      // A view change (e.g. the destination was killed) may cross the report: retry for a while.
      const attempt = (left: number): void => {
        send().catch((e: unknown) => {
          if (left > 0) return void p.clock.setTimer(REPORT_RETRY_MS, () => attempt(left - 1))
          log.warn(
            { err: describeError(e), role: r.role },
            'could not report a migration to the coordinator; a new coordinator finds where the vm runs',
          )
        })
      }
      attempt(REPORT_ATTEMPTS_MAX)
    },
  })

  const local = async (): Promise<void> => {
    await Promise.resolve() // keep requests to ourselves asynchronous and in order, like remote ones
  }
  const requests: HostRequests = {
    async start(node, r) {
      if (node === p.name) return local().then(() => startHere(r, p.name))
      const reply = await ask(node, { t: 'vm-start-request', from: p.name, ...r }, 'vm-op-reply', START_REQUEST_TIMEOUT_MS)
      return { ok: reply.ok, reason: reply.reason, storage_refused: reply.storage_refused === true }
    },
    async stop(node, r) {
      if (node === p.name) return local().then(() => stopHere(r.role, r.op, r.reason))
      const reply = await ask(node, { t: 'vm-stop-request', from: p.name, ...r }, 'vm-op-reply')
      return { ok: reply.ok, reason: reply.reason }
    },
    async migrate(node, r) {
      if (node === p.name) return local().then(() => migration.migrate(r))
      const conn = coordinatorConnection(node)
      const reply = await conn.request({ t: 'vm-migrate-request', from: p.name, ...r }, { timeout_ms: MIGRATE_REQUEST_TIMEOUT_MS })
      if (reply.message.t !== 'vm-op-reply')
        throw new HvlabError('HVLAB_E_PROTOCOL', `${node} answered ${reply.message.t}, expected vm-op-reply`)
      return { ok: reply.message.ok, reason: reply.message.reason }
    },
    async inventory(node): Promise<InventoryVmRecord[]> {
      if (node === p.name) return local().then(() => agent.inventory())
      return (await ask(node, { t: 'vm-inventory-request', from: p.name }, 'vm-inventory-reply')).vms
    },
  }

  const roles = new RoleService({
    name: p.name,
    clock: p.clock,
    hosts: p.topology.hosts.map((h) => ({ name: h.name, memory_mib: h.memory_mib })),
    membership: m,
    writeConfig: (key, value) => {
      try {
        cluster.command({ kind: 'set-config', key, value })
      } catch (e) {
        log.warn({ err: describeError(e), key }, 'role record not written; retried later')
      }
    },
    requests,
    emitEvent: (kind, details) => p.emitEvent(kind, details),
    log,
    roles_free_after_ms: c.clock_skew_ms + c.roles_stop_bound_ms,
    tick_ms: c.tick_ms,
    inventory_interval_ms: INVENTORY_INTERVAL_MS,
    live_migration: true,
  })
  service = roles
  cluster.onClusterEvent((e) => {
    if (e.kind !== 'cluster.view-changed') return
    const epoch = e.details.epoch
    const free = e.details.roles_free_at_ms
    if (typeof epoch === 'number' && typeof free === 'number') roles.onViewChanged(epoch, free)
  })

  /** Runs `fn` here if this host runs the roles, else on the coordinator; waits through a view change. */
  const onCoordinator = async <T>(
    here: () => Promise<T> | T,
    there: (coordinator: string) => Promise<T>,
    forwarded: boolean,
  ): Promise<T> => {
    const deadline = p.clock.now() + OPERATOR_WAIT_MS
    for (;;) {
      const coordinator = m.view().coordinator
      try {
        if (roles.isLeader() && roles.running) return await here()
        if (forwarded || coordinator === p.name || m.view().epoch === 0) {
          throw new HvlabError(
            'HVLAB_E_NO_QUORUM',
            `the cluster has no coordinator with quorum right now (${p.name} sees epoch ${m.view().epoch}); retry when \`hvlab cluster status\` shows quorum HELD`,
          )
        }
        return await there(coordinator)
      } catch (e) {
        const transient =
          HvlabError.has(e, 'HVLAB_E_CLOSED') || HvlabError.has(e, 'HVLAB_E_TIMEOUT') || HvlabError.has(e, 'HVLAB_E_NO_QUORUM')
        // The coordinator's refusal is given as this host's own: the operator asked this host.
        if (forwarded || !transient || p.clock.now() >= deadline) throw e instanceof HvlabError ? e.withoutOrigin() : e
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  }

  /** On the coordinator: a create provisions the VM's disk first (a failure refuses the create); other commands go as they are. */
  const runCommand = async (command: RoleCommandMessage): Promise<void> => {
    if (command.op !== 'create') return roles.command(command as RoleCommand)
    const { storage: wanted, ...spec } = command.spec
    if (wanted?.kind === 'local') {
      // A disk on one host's own storage: the VM can run only there (no failover across hosts;
      // moving local storage with it — shared-nothing migration — is not built).
      const home = spec.possible_owners?.length === 1 ? spec.possible_owners[0] : spec.preferred_owners?.[0]
      if (home === undefined || (spec.possible_owners && spec.possible_owners.length > 0 && !spec.possible_owners.includes(home))) {
        throw new HvlabError(
          'HVLAB_E_USAGE',
          `cannot create vm ${spec.name} with --storage local: its disk lives on one host, so name that host with --preferred HOST (it can run nowhere else)`,
        )
      }
      return roles.command({ op: 'create', spec: { ...spec, preferred_owners: [home], possible_owners: [home], storage: wanted } })
    }
    if (wanted === undefined || wanted === null) return roles.command({ op: 'create', spec: { ...spec, storage: null } })
    createVmRole({ ...spec, storage: null }) // a bad name, size or owner list is refused before any array is touched
    checkFitsAHost(spec, p.topology.hosts)
    if (roles.list()?.some((r) => r.name === spec.name))
      throw new HvlabError('HVLAB_E_STATE', `cannot create vm ${spec.name}: a vm with that name exists; pick another name`)
    if (wanted.kind === 'csv') {
      // A region of the CSV named after the VM, allocated by the CSV's coordinator node.
      const entry = csv.entry(wanted.csv)
      try {
        await csv.volume(wanted.csv).allocateRegion(spec.name, wanted.size_bytes)
      } catch (e) {
        throw new HvlabError(
          e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL',
          `cannot create vm ${spec.name}: no region of ${wanted.size_bytes} bytes on CSV ${wanted.csv}: ${describeError(e)}`,
          { cause: e },
        )
      }
      await roles.command({
        op: 'create',
        spec: {
          ...spec,
          storage: {
            kind: 'csv',
            csv: wanted.csv,
            region: spec.name,
            size_bytes: wanted.size_bytes,
            array: entry.array,
            volume: entry.volume,
          },
        },
      })
      return
    }
    let storage
    try {
      storage = await provisionVmDisk(vmStorageContext(p), {
        vm: spec.name,
        preferredSite: preferredSiteOf(spec.preferred_owners ?? [], p.topology.hosts),
        size_bytes: wanted.size_bytes,
      })
    } catch (e) {
      throw new HvlabError(
        e instanceof HvlabError ? e.code : 'HVLAB_E_INTERNAL',
        `cannot create vm ${spec.name}: its replicated disk could not be provisioned: ${describeError(e)}`,
        { cause: e },
      )
    }
    p.emitEvent('clx.disk-provisioned', {
      vm: spec.name,
      group: storage.group,
      volume: storage.volume,
      size_bytes: storage.size_bytes,
      primary: storage.arrays.primary,
      secondary: storage.arrays.secondary,
    })
    await roles.command({ op: 'create', spec: { ...spec, storage } })
  }
  const handleCommand = async (command: RoleCommandMessage, forwarded: boolean): Promise<Message> => {
    await onCoordinator(
      () => runCommand(command),
      async (coordinator) => {
        await ask(
          coordinator,
          { t: 'role-command-request', command, forwarded: true },
          'ok',
          command.op === 'create' ? CREATE_REQUEST_TIMEOUT_MS : ROLE_REQUEST_TIMEOUT_MS,
        )
      },
      forwarded,
    )
    return { t: 'ok' }
  }
  const handleMigrate = async (q: { name: string; to: string; options: MigrationOptionsMessage }, forwarded: boolean): Promise<Message> => {
    await onCoordinator(
      () => roles.command({ op: 'migrate', name: q.name, to: q.to, options: q.options }),
      async (coordinator) => {
        await ask(coordinator, { t: 'vm-migrate-command-request', ...q, forwarded: true }, 'ok')
      },
      forwarded,
    )
    return { t: 'ok' }
  }
  const handleList = async (forwarded: boolean): Promise<Message> => {
    try {
      return await onCoordinator(
        () => ({
          t: 'role-list-reply' as const,
          coordinator: p.name,
          source: 'coordinator' as const,
          roles: (roles.list() ?? []) as VmRoleRecord[],
        }),
        (coordinator) => ask(coordinator, { t: 'role-list-request', forwarded: true }, 'role-list-reply'),
        forwarded,
      )
    } catch (e) {
      if (forwarded) throw e
      // No coordinator answers: show the last committed records this host has.
      return {
        t: 'role-list-reply',
        coordinator: m.view().coordinator,
        source: 'database',
        roles: decodeRoles(m.database().config).roles as VmRoleRecord[],
      }
    }
  }

  p.onPeer((conn) => {
    // VMs are started, stopped and moved by the cluster's hosts only (the role is proved in the handshake).
    if (conn.remoteRole !== 'host') return
    const fromPeer = (from: string): void => {
      if (from !== conn.remoteName) throw new HvlabError('HVLAB_E_AUTH', `${conn.remoteName} sent a request claiming to be from ${from}`)
    }
    const opReply = (role: string, op: number, r: VmOpResult): Message => ({
      t: 'vm-op-reply',
      role,
      op,
      ok: r.ok,
      reason: r.reason.slice(0, 512),
    })
    conn.onRequest('vm-start-request', ({ message: q }) => {
      fromPeer(q.from)
      if (q.epoch < m.view().epoch)
        return {
          message: opReply(q.role, q.op, {
            ok: false,
            reason: `${p.name} is at cluster epoch ${m.view().epoch}; a start from epoch ${q.epoch} is stale`,
          }),
        }
      return startHere(q, q.from).then((r) => ({
        message: { ...opReply(q.role, q.op, r), ...(r.storage_refused ? { storage_refused: true } : {}) },
      }))
    })
    conn.onRequest('vm-stop-request', async ({ message: q }) => {
      fromPeer(q.from)
      return { message: opReply(q.role, q.op, await stopHere(q.role, q.op, q.reason)) }
    })
    conn.onRequest('vm-inventory-request', () => ({ message: { t: 'vm-inventory-reply', from: p.name, vms: agent.inventory() } }))
    conn.onRequest('vm-failed-report', ({ message: q }) => {
      fromPeer(q.from)
      roles.vmFailed(q.from, q.role, q.op, q.gone, q.reason)
      return { message: { t: 'ok' } }
    })
    conn.onRequest('role-command-request', async ({ message: q }) => ({ message: await handleCommand(q.command, true) }))
    conn.onRequest('role-list-request', async () => ({ message: await handleList(true) }))
    conn.onRequest('vm-migrate-command-request', async ({ message: q }) => ({ message: await handleMigrate(q, true) }))
    conn.onRequest('vm-migrate-request', ({ message: q }) => {
      fromPeer(q.from)
      if (q.epoch < m.view().epoch)
        return {
          message: opReply(q.role, q.op, {
            ok: false,
            reason: `${p.name} is at cluster epoch ${m.view().epoch}; a migration from epoch ${q.epoch} is stale`,
          }),
        }
      return { message: opReply(q.role, q.op, migration.migrate(q)) }
    })
    conn.onRequest('vm-migrated-report', ({ message: q }) => {
      fromPeer(q.from)
      if (!roles.running) throw new HvlabError('HVLAB_E_STATE', `${p.name} does not run the vm roles now; report to the coordinator`)
      roles.vmMigrated(q.from, q.role, q.to, q.op, q.ok, q.reason)
      return { message: { t: 'ok' } }
    })
  })
  p.serveOperator('role-command-request', (q) => handleCommand(q.command, false))
  p.serveOperator('role-list-request', () => handleList(false))
  p.serveOperator('vm-migrate-command-request', (q) => handleMigrate(q, false))
  p.serveOperator('vm-inventory-request', () => ({ t: 'vm-inventory-reply', from: p.name, vms: agent.inventory() }))
  serveGuestHang(p, agent)
  p.addStatus(() => ({
    vms: agent.inventory(),
    roles: { running_here: roles.running && roles.isLeader(), count: roles.list()?.length ?? null },
  }))

  agent.start()
  roles.start()
  return { agent, service: roles }
}

/** Runs each VM's operations one after another (in the order asked), different VMs independently. */
export function perVmOrder(): <T>(vm: string, op: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>()
  return (vm, op) => {
    const run = (tails.get(vm) ?? Promise.resolve()).then(op, op)
    const tail = run.catch(() => undefined)
    tails.set(vm, tail)
    void tail.then(() => {
      if (tails.get(vm) === tail) tails.delete(vm)
    })
    return run
  }
}
