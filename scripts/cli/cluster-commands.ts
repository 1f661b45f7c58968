/** `hvlab cluster …`: the failover cluster's commands (quorum state, forced quorum). */
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import { randomBytes } from 'node:crypto'
import { InvalidArgumentError } from 'commander'
import type {
  ClusterStatus,
  MigrationOptionsMessage,
  MigrationResultMessage,
  RoleCommandMessage,
} from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import type { LabClusterStatus, LabStatus } from '../controller/lab-controller.js'
import { ControlClient } from './control-client.js'
import { askAnyHost } from './cluster-client.js'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { validateCluster, validationPassed } from './cluster-validation.js'
import { labLayout } from '../../shared/lab-layout.js'
import { loadTopology } from '../../shared/topology.js'
import { formatCluster, formatValidation, formatVmList, validationHtml } from './format.js'
import { currentIo, setExitCode } from './cli-io.js'
import { dirOption, intIn, nameList, out, printJson, printResult } from './options.js'
import { chooseVmStorage } from '../../shared/vm-storage-choice.js'
import { formatVmDepsTree, vmDeps, type ArrayAnswer } from './vm-deps.js'

/** `vm create` may first provision the VM's replicated disk on both arrays. */
const CREATE_TIMEOUT_MS = 90_000
import { formatProgressBar } from './migration-progress.js'
import { GUEST_HANG_MS_MAX } from '../../shared/protocol/cluster-messages.js'
import { VM_DISK_IOPS_MAX } from '../../shared/protocol/cluster-messages.js'

/** How long one host may take to answer a cluster request. */
const HOST_REQUEST_TIMEOUT_MS = 3000
/** `vm inspect` waits this long per MiB of guest memory on top of a request (the owner hashes it). */
const INSPECT_HASH_MS_PER_MIB = 50

const roleCommand = (client: ControlClient, command: RoleCommandMessage): Promise<unknown> =>
  askAnyHost(client, { t: 'role-command-request', command, forwarded: false }, 'ok')

/** Every up host's own view of the quorum, asked now; the witness's vote holder from the lab status. */
export async function clusterStatusNow(client: ControlClient): Promise<LabClusterStatus> {
  const lab = await client.get<LabStatus>('/v1/status')
  const hosts: Record<string, ClusterStatus> = {}
  const up = lab.processes.filter((p) => p.role === 'host' && p.state === 'up')
  await Promise.all(
    up.map(async (p) => {
      try {
        const r = await client.request(p.name, { t: 'cluster-status-request' }, 'cluster-status-reply', HOST_REQUEST_TIMEOUT_MS)
        hosts[p.name] = r.status
      } catch {
        // a host that does not answer in time is left out; `hvlab status` shows its process state
      }
    }),
  )
  if (Object.keys(hosts).length === 0)
    throw new HvlabError('HVLAB_E_STATE', 'no host of the cluster answered; `hvlab status` shows which processes are up')
  return { hosts, witness: lab.cluster?.witness ?? null, refreshed_ms: Date.now() }
}

export function registerClusterCommands(program: Command): void {
  registerVmCommands(program)
  registerNodeCommands(program)

  const cluster = program.command('cluster').description('the failover cluster: quorum state and operator overrides')

  cluster
    .command('status')
    .description('quorum model, votes present/needed, witness vote holder, epoch, and each node: Up, Down, Paused or Joining')
    .addOption(dirOption())
    .option(
      '--json',
      'machine-readable: {"hosts":{NAME:{model,epoch,members,votes_present,votes_needed,holds_lease,nodes:[{name,state}]…}},"witness":{vote_holder,…}}',
    )
    .action(async (o: { dir: string; json?: boolean }) => {
      const s = await clusterStatusNow(ControlClient.forDir(o.dir))
      printResult(o.json, s, () => formatCluster(s))
    })

  cluster
    .command('validate')
    .description(
      'check the cluster the way the validation wizard does: heartbeats between all nodes, the witness from every site, vm owners; prints the result and writes an HTML report in the data dir; exits 1 if a check failed',
    )
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"passed","report","checks":[{area,name,result,detail}]}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const layout = labLayout(o.dir)
      const topology = loadTopology(layout.topology)
      const lab = await client.get<LabStatus>('/v1/status')
      const statuses = (await clusterStatusNow(client).catch(() => ({ hosts: {} as Record<string, ClusterStatus> }))).hosts
      const list = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply').catch(() => null)
      const arrays: Record<string, { volumes: string[]; presented: Record<string, string[]> } | { error: string }> = {}
      if (list?.roles.some((r) => r.storage?.kind === 'replicated' || r.storage?.kind === 'csv')) {
        await Promise.all(
          topology.arrays.map(async (a) => {
            try {
              const listing = (await client.request(a.name, { t: 'volume-list' }, 'volume-listing', HOST_REQUEST_TIMEOUT_MS)).volumes
              arrays[a.name] = {
                volumes: listing.map((v) => v.volume),
                presented: Object.fromEntries(listing.map((v) => [v.volume, v.presented_to])),
              }
            } catch (e) {
              arrays[a.name] = { error: describeError(e) }
            }
          }),
        )
      }
      const checks = validateCluster({
        hosts: topology.hosts,
        witness: topology.witness ? { name: topology.witness.name, site: topology.witness.site } : null,
        statuses,
        roles: list?.source === 'coordinator' ? list.roles : null,
        arrays,
      })
      const report = join(layout.root, 'cluster-validation.html')
      await writeFile(report, validationHtml(checks, { name: lab.lab.name, at: new Date().toISOString() }))
      const passed = validationPassed(checks)
      printResult(o.json, { passed, report, checks }, () => formatValidation(checks, report))
      if (!passed) setExitCode(1)
    })

  cluster
    .command('force-quorum')
    .description(
      'DANGEROUS: start the cluster on NODE alone, without quorum. Its cluster database becomes authoritative and every other host joins it (prevent quorum); changes made on the other side since are lost. Use only when the majority is gone for good.',
    )
    .argument('<node>', 'the host to force quorum on, e.g. host-b1')
    .addOption(dirOption())
    .action(async (node: string, o: { dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      try {
        await client.request(node, { t: 'cluster-force-quorum-request' }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      } catch (e) {
        throw new HvlabError(e instanceof HvlabError ? e.code : 'HVLAB_E_STATE', `cannot force quorum on ${node}: ${describeError(e)}`)
      }
      out(
        `forced quorum on ${node}: it now runs the cluster alone with its database; other hosts join it as they reach it. \`hvlab cluster status\` shows the result.`,
      )
    })
}

function registerVmCommands(program: Command): void {
  const vm = program.command('vm').description('highly available VM roles: create, start, stop, move, list')

  vm.command('create')
    .description('create a VM role (stopped); `hvlab vm start NAME` runs it on its first preferred owner that is up and has memory')
    .argument('<name>', 'the VM name: 1–63 of a-z 0-9 . _ -')
    .option('--memory-mib <n>', 'guest memory, MiB (the emulated VM really has it: keep lab VMs small)', intIn(32, 4 * 1024 * 1024), 64)
    .option('--preferred <hosts>', 'preferred owners in order, comma-separated, e.g. host-a1,host-a2', nameList)
    .option(
      '--storage <kind>',
      "replicated: a disk on the array of the preferred owner's site in a synchronous remote-copy group of its own (rc-NAME), presented to both sites' hosts (the default with an array in each of two sites); local: the disk stays on its one host (the first --preferred), where alone the VM runs (no failover); csv:NAME: a region of Cluster Shared Volume NAME (`hvlab csv create`), every node reads and writes it",
    )
    .option('--disk-gib <n>', 'size of the replicated or CSV disk in GiB (default 16 MiB)', intIn(1, 4))
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; memoryMib: number; preferred?: string[]; storage?: string; diskGib?: number }) => {
      const storage = chooseVmStorage(
        { ...(o.storage !== undefined ? { storage: o.storage } : {}), ...(o.diskGib !== undefined ? { disk_gib: o.diskGib } : {}) },
        loadTopology(labLayout(o.dir).topology).arrays,
      )
      await askAnyHost(
        ControlClient.forDir(o.dir),
        {
          t: 'role-command-request',
          command: { op: 'create', spec: { name, memory_mib: o.memoryMib, preferred_owners: o.preferred ?? [], storage } },
          forwarded: false,
        },
        'ok',
        CREATE_TIMEOUT_MS,
      )
      const disk =
        storage.kind === 'replicated'
          ? `, disk ${name}-disk0 of ${storage.size_bytes / 1048576} MiB in remote copy group rc-${name}`
          : storage.kind === 'csv'
            ? `, disk: region ${name} of ${storage.size_bytes / 1048576} MiB on Cluster Shared Volume ${storage.csv}`
            : ', local storage'
      out(
        `created vm ${name} (${o.memoryMib} MiB${o.preferred ? `, preferred ${o.preferred.join(',')}` : ''}${disk}); start it with \`hvlab vm start ${name}\`; \`hvlab vm deps ${name}\` shows its storage`,
      )
    })

  for (const verb of ['start', 'stop'] as const) {
    vm.command(verb)
      .description(
        verb === 'start'
          ? 'start a VM role on the best node (preferred owners first); resets its failover counters'
          : 'stop a VM role; it stays off until started',
      )
      .argument('<name>', 'the VM name')
      .option(
        '--force-storage',
        verb === 'start'
          ? "let CLX use this site's copy of the disk even though its remote-copy group is not in sync (later writes on the other array are lost); refused while the copy is still syncing"
          : 'only for start',
      )
      .addOption(dirOption())
      .action(async (name: string, o: { dir: string; forceStorage?: boolean }) => {
        if (verb === 'stop' && o.forceStorage) throw new HvlabError('HVLAB_E_USAGE', '--force-storage is for `hvlab vm start`')
        await roleCommand(
          ControlClient.forDir(o.dir),
          verb === 'start' && o.forceStorage ? { op: 'start', name, force_storage: true } : { op: verb, name },
        )
        out(`${verb === 'start' ? 'starting' : 'stopping'} vm ${name}; \`hvlab vm list\` shows where it runs`)
      })
  }

  vm.command('move')
    .description(
      'move a running VM to another host by live migration (in the background); with --quick by quick migration: save memory and state, transfer, restore — the VM is down for the whole copy, and the command waits and reports how long',
    )
    .argument('<name>', 'the VM name')
    .requiredOption('--to <host>', 'the host to move it to')
    .option('--quick', 'quick migration; waits and reports the downtime')
    .option('--json', 'with --quick: the result as one object')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; to: string; quick?: boolean; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      if (!o.quick) {
        await roleCommand(client, { op: 'move', name, to: o.to })
        out(`live-migrating vm ${name} to ${o.to}; \`hvlab vm list\` shows when it runs there`)
        return
      }
      const r = await runMigration(
        client,
        name,
        o.to,
        { mode: 'quick', budget_ms: null, max_rounds: null, verify: false, ticket: newTicket() },
        o.json === true,
      )
      printResult(o.json, r, () =>
        r.outcome === 'completed'
          ? `quick-migrated vm ${name} to ${o.to}: down for ${r.downtime_ms} ms (${mib(r.bytes_sent)} MiB sent)`
          : `vm ${name} stays on ${r.source}: ${r.outcome}: ${r.reason}`,
      )
      if (r.outcome !== 'completed') setExitCode(1)
    })

  vm.command('migrate')
    .description(
      'live-migrate a running VM to another host: pre-copy rounds while it runs, then a short blackout; shows a progress bar on a terminal (round, pages left, rate, expected blackout; a line per change when not a terminal) and the result. If it fails or is cancelled the VM keeps running where it was',
    )
    .argument('<name>', 'the VM name')
    .requiredOption('--to <host>', 'the host to migrate it to')
    .option('--budget-ms <n>', 'downtime budget: switch over when the rest fits in it', intIn(1, 60_000))
    .option('--max-rounds <n>', 'pre-copy rounds at most before switching over anyway', intIn(1, 1000))
    .option('--verify', 'hash memory on both sides at the switch-over (adds to the blackout)')
    .option(
      '--json',
      'machine-readable: one object {outcome,total_ms,blackout_ms,bytes_sent,bytes_raw,rounds:[{round,dirty_pages,…}],pages:{skipped,zero,delta,full},…}',
    )
    .addOption(dirOption())
    .action(
      async (name: string, o: { dir: string; to: string; budgetMs?: number; maxRounds?: number; verify?: boolean; json?: boolean }) => {
        const options: MigrationOptionsMessage = {
          mode: 'live',
          budget_ms: o.budgetMs ?? null,
          max_rounds: o.maxRounds ?? null,
          verify: o.verify === true,
          ticket: newTicket(),
        }
        const r = await runMigration(ControlClient.forDir(o.dir), name, o.to, options, o.json === true)
        const hashes_match = r.source_sha256 !== null && r.source_sha256 === r.destination_sha256
        printResult(o.json, { ...r, ...(options.verify ? { hashes_match } : {}) }, () => formatMigration(r, options.verify, hashes_match))
        if (r.outcome !== 'completed' || (options.verify && !hashes_match)) setExitCode(1)
      },
    )

  vm.command('migrate-cancel')
    .description('cancel the live migration of a VM; it keeps running on its host')
    .argument('<name>', 'the VM name')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string }) => {
      const client = ControlClient.forDir(o.dir)
      const owner = await ownerOf(client, name)
      await client.request(owner, { t: 'vm-migrate-cancel-request', vm: name }, 'ok', HOST_REQUEST_TIMEOUT_MS)
      out(`cancelling the migration of vm ${name}; it stays on ${owner}`)
    })

  vm.command('load')
    .description(
      'change the guest workload of a running VM live: how fast it dirties memory, how concentrated the writes are, and how many block writes per second it does to its disk; options left out keep their value',
    )
    .argument('<name>', 'the VM name')
    .option('--dirty-mib-s <n>', 'MiB/s of pages dirtied (0 = idle)', numberIn(0, 4096))
    .option('--hot <fraction>', 'share of pages that take 80% of the writes (0–1, default 0.05)', numberIn(0.0001, 1))
    .option(
      '--disk-iops <n>',
      `block writes per second to the VM's disk, each carrying the owner's epoch (0 = idle, at most ${VM_DISK_IOPS_MAX}); takes effect once its disk is attached`,
      intIn(0, VM_DISK_IOPS_MAX),
    )
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; dirtyMibS?: number; hot?: number; diskIops?: number }) => {
      if (o.dirtyMibS === undefined && o.hot === undefined && o.diskIops === undefined) {
        throw new HvlabError('HVLAB_E_USAGE', 'say what to change: --dirty-mib-s, --hot and/or --disk-iops')
      }
      const client = ControlClient.forDir(o.dir)
      const owner = await ownerOf(client, name)
      await client.request(
        owner,
        {
          t: 'vm-load-request',
          vm: name,
          hot_fraction: o.hot ?? null,
          ...(o.dirtyMibS !== undefined ? { dirty_mib_per_s: o.dirtyMibS } : {}),
          ...(o.diskIops !== undefined ? { disk_iops: o.diskIops } : {}),
        },
        'ok',
        HOST_REQUEST_TIMEOUT_MS,
      )
      const changed = [
        ...(o.dirtyMibS !== undefined ? [`dirties ${o.dirtyMibS} MiB/s`] : []),
        ...(o.hot !== undefined ? [`hot ${o.hot}`] : []),
        ...(o.diskIops !== undefined ? [`writes ${o.diskIops} blocks/s to its disk`] : []),
      ]
      out(`vm ${name} on ${owner} now ${changed.join(', ')}`)
    })

  vm.command('inspect')
    .description('one VM as its host runs it: host, paused, memory hash, guest heartbeats, load, disk writer counters')
    .argument('<name>', 'the VM name')
    .option(
      '--json',
      'machine-readable: {vm,host,running,paused,memory_mib,memory_sha256,guest_heartbeats,dirty_mib_per_s,disk_iops,disk:{state,writes_acked,writes_refused,…}|null,…}',
    )
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; json?: boolean }) => {
      const r = await vmInspectNow(ControlClient.forDir(o.dir), name)
      if (o.json) printJson(r)
      else {
        out(
          `vm ${r.vm} on ${r.host}: ${r.running ? (r.paused ? 'paused' : 'running') : 'stopped'}, ${r.memory_mib} MiB, sha256 ${r.memory_sha256 ?? '-'}, ${r.guest_heartbeats} guest heartbeats, load ${r.dirty_mib_per_s} MiB/s, disk ${r.disk_iops ?? 0} writes/s`,
        )
        const d = r.disk
        if (d)
          out(
            `disk ${d.array}/${d.volume}: ${d.state}, ${d.writes_acked} acked, ${d.writes_refused} refused (stale epoch), ${d.write_errors} errors, ${d.writes_skipped} skipped (queue full), ${d.in_flight} in flight, last acked seq ${d.last_acked_seq ?? '-'}, epoch ${d.last_epoch ?? '-'}${d.last_error ? `; last error: ${d.last_error}` : ''}`,
          )
        else out('disk: not attached')
      }
    })

  vm.command('hang')
    .description(
      'fault injection: the guest of a running VM stops answering its heartbeat (the VM still looks running); the health checks (LooksAlive, then IsAlive) restart it on its node, and fail it over after 3 restarts in 15 min. --release makes it answer again',
    )
    .argument('<name>', 'the VM name')
    .option(
      '--for-ms <n>',
      `hang this long, then answer again (1–${GUEST_HANG_MS_MAX}); default: until released or restarted`,
      intIn(1, GUEST_HANG_MS_MAX),
    )
    .option('--release', 'end the hang now')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; forMs?: number; release?: boolean }) => {
      if (o.release && o.forMs !== undefined) throw new HvlabError('HVLAB_E_USAGE', 'give either --for-ms or --release, not both')
      const client = ControlClient.forDir(o.dir)
      const owner = await ownerOf(client, name)
      await client.request(
        owner,
        { t: 'vm-hang-request', vm: name, for_ms: o.forMs ?? null, release: o.release === true },
        'ok',
        HOST_REQUEST_TIMEOUT_MS,
      )
      if (o.release) out(`vm ${name} on ${owner}: the guest answers its heartbeat again`)
      else
        out(
          `vm ${name} on ${owner}: the guest hangs ${o.forMs !== undefined ? `for ${o.forMs} ms` : 'until released or restarted'}; its health checks will notice (\`hvlab events\` shows role.health-suspect, role.health-failed, then the restart)`,
        )
    })

  vm.command('deps')
    .description('the dependency tree of a vm: vm → disks → storage resource')
    .argument('<name>', 'the VM name')
    .addOption(dirOption())
    .option(
      '--json',
      'machine-readable: {"vm","state","owner","memory_mib","disks":[{kind,volume,size_bytes,group,mode,presented_to,arrays:[{array,natural,reachable,role,started,link_up,state,bytes_behind}]}]}',
    )
    .action(async (name: string, o: { dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const r = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')
      const v = r.roles.find((x) => x.name === name)
      if (v === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${name}; see \`hvlab vm list\``)
      const answers: Record<string, ArrayAnswer> = {}
      const spec = v.storage ?? null
      if (spec?.kind === 'replicated') {
        await Promise.all(
          [spec.arrays.primary, spec.arrays.secondary].map(async (array) => {
            try {
              const s = await client.request(array, { t: 'rc-status-request', group: spec.group }, 'rc-status', HOST_REQUEST_TIMEOUT_MS)
              answers[array] = { status: s.groups.find((g) => g.group === spec.group) }
            } catch (e) {
              answers[array] =
                e instanceof HvlabError && e.code === 'HVLAB_E_NOT_FOUND' ? { status: undefined } : { error: describeError(e) }
            }
          }),
        )
      }
      const deps = vmDeps(v, answers)
      printResult(o.json, deps, () => formatVmDepsTree(deps))
    })

  vm.command('list')
    .description('every VM role: name, owner, state, preferred owners, and why it is in its state')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"coordinator","source","roles":[{name,owner,state,preferred_owners,memory_mib,reason,…}]}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const r = await vmListNow(ControlClient.forDir(o.dir))
      printResult(o.json, r, () => formatVmList(r))
    })
}

function registerNodeCommands(program: Command): void {
  const node = program.command('node').description('node maintenance: pause (and drain) or resume a cluster node')

  node
    .command('pause')
    .description('pause a node: no new roles go there; with --drain its roles move to other nodes (quick move)')
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--drain', 'move its running roles off to other nodes')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; drain?: boolean }) => {
      await roleCommand(ControlClient.forDir(o.dir), { op: 'pause', node: name, drain: o.drain === true })
      out(`paused ${name}${o.drain ? '; draining its roles (`hvlab vm list` shows them move)' : ''}`)
    })

  node
    .command('resume')
    .description('resume a paused node; with --failback the roles drained from it move back')
    .argument('<name>', 'the host, e.g. host-a1')
    .option('--failback', 'move the roles drained from it back')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; failback?: boolean }) => {
      await roleCommand(ControlClient.forDir(o.dir), { op: 'resume', node: name, failback: o.failback === true })
      out(`resumed ${name}${o.failback ? '; its drained roles move back' : ''}`)
    })
}

/** How often `vm migrate` polls the source for progress. */
const MIGRATION_POLL_MS = 200
/** A migration that shows no result in this long is reported as lost (the source may have died). */
const MIGRATION_WAIT_MS = 10 * 60_000

const newTicket = (): string => `t${randomBytes(6).toString('hex')}`
const mib = (bytes: number): string => (bytes / 1048576).toFixed(1)

const numberIn =
  (min: number, max: number) =>
  (v: string): number => {
    const n = Number(v)
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`a number from ${min} to ${max}`)
    return n
  }

/** The host a VM role runs on now, from the coordinator. */
/** What `hvlab vm list --json` prints (tests call it in-process). */
export async function vmListNow(client: ControlClient): Promise<Omit<MessageOf<'role-list-reply'>, 't'>> {
  const r = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')
  return { coordinator: r.coordinator, source: r.source, roles: r.roles }
}

/** What `hvlab vm inspect NAME --json` prints (tests call it in-process). */
export async function vmInspectNow(client: ControlClient, name: string): Promise<Omit<MessageOf<'vm-inspect-reply'>, 't'>> {
  const { owner, memory_mib } = await runningRole(client, name)
  // The owner hashes the guest's memory to answer, in slices that let it serve its peers
  // between them: allow for a slow rate on a loaded machine (20 MiB/s) on top of a request.
  const timeout_ms = HOST_REQUEST_TIMEOUT_MS + memory_mib * INSPECT_HASH_MS_PER_MIB
  const { t: _t, ...rest } = await client.request(owner, { t: 'vm-inspect-request', vm: name }, 'vm-inspect-reply', timeout_ms)
  return rest
}

async function ownerOf(client: ControlClient, name: string): Promise<string> {
  return (await runningRole(client, name)).owner
}

/** The VM's role, which must be running, with its owner. */
async function runningRole(client: ControlClient, name: string): Promise<{ owner: string; memory_mib: number }> {
  const r = await askAnyHost(client, { t: 'role-list-request', forwarded: false }, 'role-list-reply')
  const v = r.roles.find((x) => x.name === name)
  if (v === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `no vm named ${name}; see \`hvlab vm list\``)
  if (v.owner === null || v.state !== 'running') throw new HvlabError('HVLAB_E_STATE', `vm ${name} is ${v.state}; it must be running`)
  return { owner: v.owner, memory_mib: v.memory_mib }
}

/** Asks the coordinator to migrate, then follows the source until the migration with our ticket ended. */
async function runMigration(
  client: ControlClient,
  name: string,
  to: string,
  options: MigrationOptionsMessage,
  quiet: boolean,
): Promise<MigrationResultMessage> {
  const source = await ownerOf(client, name)
  await askAnyHost(client, { t: 'vm-migrate-command-request', name, to, options, forwarded: false }, 'ok')
  const deadline = Date.now() + MIGRATION_WAIT_MS
  let shown = ''
  // On a terminal: one progress bar redrawn in place; otherwise (a pipe, a log) a line per change.
  const io = currentIo()
  const bar = !quiet && io.isTTY
  let pages_total = 0
  const clearBar = (): void => {
    if (bar && shown !== '') io.stderr(`\r${' '.repeat(Math.max(20, (io.columns ?? 100) - 1))}\r`)
  }
  for (;;) {
    if (Date.now() > deadline) {
      clearBar()
      throw new HvlabError(
        'HVLAB_E_TIMEOUT',
        `no result from ${source} for the migration of vm ${name} after ${MIGRATION_WAIT_MS / 1000} s; \`hvlab vm list\` shows where it runs`,
      )
    }
    let st
    try {
      st = await client.request(
        source,
        { t: 'vm-migration-status-request', vm: name },
        'vm-migration-status-reply',
        HOST_REQUEST_TIMEOUT_MS,
      )
    } catch (e) {
      clearBar()
      throw new HvlabError(
        'HVLAB_E_STATE',
        `lost track of the migration: ${source} did not answer (${describeError(e)}); \`hvlab vm list\` shows where vm ${name} runs`,
      )
    }
    if (st.ticket === options.ticket) {
      if (st.state === 'done' && st.result !== null) {
        clearBar()
        return st.result
      }
      pages_total = Math.max(pages_total, st.pages_left)
      const line = bar
        ? formatProgressBar({ ...st, pages_total }, io.columns ?? 100)
        : `${options.mode} ${name} ${source} → ${to}: ${st.stage} round ${st.round}, ${st.pages_left} pages left, ${mib(st.bandwidth_bytes_per_s)} MiB/s, expected blackout ${st.expected_blackout_ms === null ? '-' : `${Math.round(st.expected_blackout_ms)} ms`}`
      if (!quiet && line !== shown) io.stderr(bar ? `\r${line}` : line + '\n')
      shown = line
    }
    await new Promise((r) => setTimeout(r, MIGRATION_POLL_MS))
  }
}

function formatMigration(r: MigrationResultMessage, verify: boolean, hashes_match: boolean): string {
  const lines = [
    r.outcome === 'completed'
      ? `vm ${r.vm} live-migrated ${r.source} → ${r.destination} in ${Math.round(r.total_ms)} ms; blackout ${r.blackout_ms === null ? '-' : `${Math.round(r.blackout_ms)} ms`} (expected ${r.expected_blackout_ms === null ? '-' : Math.round(r.expected_blackout_ms)}, switch-over: ${r.switch_reason ?? '-'})`
      : `vm ${r.vm} stays on ${r.source}: migration ${r.outcome}: ${r.reason}`,
    `  sent ${mib(r.bytes_sent)} MiB for ${mib(r.bytes_raw)} MiB raw (memory ${mib(r.memory_bytes)} MiB), ${mib(r.bandwidth_bytes_per_s)} MiB/s, dirty rate ${mib(r.dirty_rate_bytes_per_s)} MiB/s, throttle max ${r.throttle_pct_max}%`,
    `  rounds: ${r.rounds.map((x) => `#${x.round} ${x.dirty_pages} pages`).join(', ') || '-'}; final ${r.final_pages} pages`,
    `  pages: ${r.pages.scanned} scanned, ${r.pages.skipped} skipped, ${r.pages.zero} zero, ${r.pages.delta} delta, ${r.pages.full} full`,
  ]
  if (verify)
    lines.push(
      `  verify: source ${r.source_sha256 ?? '-'} destination ${r.destination_sha256 ?? '-'}: ${hashes_match ? 'MATCH' : 'MISMATCH'}`,
    )
  return lines.join('\n')
}
