/**
 * `hvlab vm …`: highly available VM roles. This file makes the group and its life-cycle
 * commands (create, start, stop, deps, list); the moves (vm-move-commands.ts), the
 * guest's workload and faults (vm-workload-commands.ts) and `vm ping` (guest-commands.ts)
 * register theirs among them, in the order `hvlab vm --help` lists them.
 */
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import { labLayout } from '../../shared/lab-layout.js'
import { HOST_REQUEST_TIMEOUT_MS, createRole } from './cluster-client.js'
import { chosenTopology } from './cluster-choice.js'
import { ControlClient } from './control-client.js'
import { formatVmList } from './format.js'
import { registerVmPing } from './guest-commands.js'
import { dirOption, intIn, nameList, out, printResult } from './options.js'
import { MIB } from './units.js'
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import { RC_PERIOD_MS_MAX, VM_DISKS_MAX } from '../../shared/protocol/storage-limits.js'
import { ifClusterReachable } from './replica-queries.js'
import { formatVmDepsTree, vmDeps, type ArrayAnswer } from './vm-deps.js'
import { registerVmMigrate, registerVmMigrateCancel, registerVmMove } from './vm-move-commands.js'
import { registerVmStart, registerVmStop } from './vm-start-stop-commands.js'
import { createOnStandalone, formatStandaloneVms, refuseStandaloneName, standaloneVmsNow } from './standalone-vms.js'
import { vmRole } from './vm-queries.js'
import { registerVmRemove } from './vm-remove-command.js'
import { registerVmSet } from './vm-set-command.js'
import { vmListReport } from './vm-storage-status.js'
import { registerVmHang, registerVmInspect, registerVmLoad } from './vm-workload-commands.js'

/** The most guest memory `vm create` takes, MiB (4 TiB). */
const MEMORY_MIB_MAX = 4 * 1024 * 1024

export function registerVmCommands(program: Command): void {
  const vm = program.command('vm').description('highly available VM roles: create, start, stop, move, list')
  registerVmCreate(vm)
  registerVmStart(vm)
  registerVmStop(vm)
  registerVmSet(vm)
  registerVmMove(vm)
  registerVmMigrate(vm)
  registerVmMigrateCancel(vm)
  registerVmLoad(vm)
  registerVmInspect(vm)
  registerVmHang(vm)
  registerVmRemove(vm)
  registerVmDeps(vm)
  registerVmList(vm)
  registerVmPing(vm)
}

interface VmCreateOptions {
  dir: string
  memoryMib: number
  preferred?: string[]
  storage?: string
  diskGib?: number
  rcPeriodMs?: number
  disks?: number
  on?: string
}

function registerVmCreate(vm: Command): void {
  vm.command('create')
    .description(
      'create a VM role (stopped); `hvlab vm start NAME` runs it on its first preferred owner that is up and has memory. With --on HOST: a VM of standalone host HOST instead, created and started there',
    )
    .argument('<name>', 'the VM name: 1–63 of a-z 0-9 . _ -')
    .option('--memory-mib <n>', 'guest memory, MiB (the emulated VM really has it: keep lab VMs small)', intIn(32, MEMORY_MIB_MAX), 64)
    .option('--preferred <hosts>', 'preferred owners in order, comma-separated, e.g. host-a1,host-a2', nameList)
    .option(
      '--storage <kind>',
      "replicated: a disk on the array of the preferred owner's site in a synchronous remote-copy group of its own (rc-NAME), presented to both sites' hosts (the default with an array in each of two sites); local: the disk stays on its one host (the first --preferred), where alone the VM runs (no failover); csv:NAME: a region of Cluster Shared Volume NAME (`hvlab csv create`), every node reads and writes it",
    )
    .option('--disk-gib <n>', 'size of the replicated, CSV or standalone disk in GiB (default 16 MiB)', intIn(1, 4))
    .option(
      '--disks <n>',
      `the VM has N disks of --disk-gib each (disk 0 and its data disks NAME-disk1…; default 1): volumes in the VM's one remote-copy group, failing over and consistent together; regions of the CSV; or, with --on, slices of the standalone host's one image. Each writes at the load's --disk-iops`,
      intIn(1, VM_DISKS_MAX),
    )
    .option(
      '--rc-period-ms <ms>',
      "replicated only: the disk's remote-copy group is periodic (asynchronous: the changes are sent every period, scaled by the lab's timeScale; a failover to the other site loses what the last period had not sent) instead of synchronous",
      intIn(1, RC_PERIOD_MS_MAX),
    )
    .option(
      '--on <host>',
      "a standalone Hyper-V host (not a cluster member, e.g. replica-dr1 of topologies/two-site-dr.json): the VM is that host's own, on its own storage, not a cluster role, and starts at once; `hvlab replica enable NAME --to cluster` replicates it to the cluster",
    )
    .addOption(dirOption())
    .action(createVm)
}

async function createVm(name: string, o: VmCreateOptions): Promise<void> {
  if (name === REPLICA_BROKER_ROLE)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `${name} is the name of the cluster's Replica Broker role (\`hvlab replica server enable cluster\` makes it); name the VM otherwise`,
    )
  // Loaded when a VM is created, not when hvlab starts: the topology brings zod and its schemas.
  const { chooseVmStorage, DISK_BYTES_DEFAULT } = await import('../../shared/vm-storage-choice.js')
  if (o.on !== undefined) {
    if (o.preferred !== undefined || o.storage !== undefined || o.rcPeriodMs !== undefined)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `--on ${o.on} creates the VM on that standalone host's own storage, where alone it runs: leave out --preferred, --storage and --rc-period-ms`,
      )
    const disk_bytes = o.diskGib === undefined ? DISK_BYTES_DEFAULT : o.diskGib * 1024 * MIB
    const disks = o.disks === undefined ? {} : { disks: o.disks }
    return createOnStandalone(ControlClient.forDir(o.dir), o.dir, name, { host: o.on, memory_mib: o.memoryMib, disk_bytes, ...disks })
  }
  const storage = chooseVmStorage(
    {
      ...(o.storage !== undefined ? { storage: o.storage } : {}),
      ...(o.diskGib !== undefined ? { disk_gib: o.diskGib } : {}),
      ...(o.rcPeriodMs !== undefined ? { rc_period_ms: o.rcPeriodMs } : {}),
      ...(o.disks !== undefined ? { disks: o.disks } : {}),
    },
    (await chosenTopology(labLayout(o.dir).topology)).arrays,
  )
  const client = ControlClient.forDir(o.dir)
  await refuseStandaloneName(client, o.dir, name)
  await createRole(client, { name, memory_mib: o.memoryMib, preferred_owners: o.preferred ?? [], storage })
  const n = storage.kind === 'local' ? 1 : (storage.disks ?? 1)
  const disks = n === 1 ? 'disk' : `${n} disks`
  const names = (first: string): string => (n === 1 ? first : `${first}…${name}-disk${n - 1}`)
  const disk =
    storage.kind === 'replicated'
      ? `, ${disks} ${names(`${name}-disk0`)} of ${storage.size_bytes / MIB} MiB in ${storage.period_ms === undefined ? 'synchronous' : `periodic (every ${storage.period_ms} ms)`} remote copy group rc-${name}`
      : storage.kind === 'csv'
        ? `, ${disks}: region ${names(name)} of ${storage.size_bytes / MIB} MiB on Cluster Shared Volume ${storage.csv}`
        : ', local storage'
  out(
    `created vm ${name} (${o.memoryMib} MiB${o.preferred ? `, preferred ${o.preferred.join(',')}` : ''}${disk}); start it with \`hvlab vm start ${name}\`; \`hvlab vm deps ${name}\` shows its storage`,
  )
}

function registerVmDeps(vm: Command): void {
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
      const v = await vmRole(client, name)
      const spec = v.storage ?? null
      const answers = spec?.kind === 'replicated' ? await groupSides(client, spec.group, [spec.arrays.primary, spec.arrays.secondary]) : {}
      const deps = vmDeps(v, answers)
      printResult(o.json, deps, () => formatVmDepsTree(deps))
    })
}

/** What each of `arrays` says about remote-copy group `group`: its side, none, or why it did not answer. */
async function groupSides(client: ControlClient, group: string, arrays: readonly string[]): Promise<Record<string, ArrayAnswer>> {
  const answers: Record<string, ArrayAnswer> = {}
  await Promise.all(
    arrays.map(async (array) => {
      try {
        const s = await client.request(array, { t: 'rc-status-request', group }, 'rc-status', HOST_REQUEST_TIMEOUT_MS)
        answers[array] = { status: s.groups.find((g) => g.group === group) }
      } catch (e) {
        answers[array] = e instanceof HvlabError && e.code === 'HVLAB_E_NOT_FOUND' ? { status: undefined } : { error: describeError(e) }
      }
    }),
  )
  return answers
}

function registerVmList(vm: Command): void {
  vm.command('list')
    .description(
      'every VM role: name, state, owner, memory, priority, preferred owners, its storage as its owner sees it (ok, lost, local), and why it is in its state (a role that cannot be placed says why); then the VMs standalone hosts run from their own disks (created there, or failed over there)',
    )
    .addOption(dirOption())
    .option(
      '--json',
      'machine-readable: {"coordinator","source":coordinator|database|none (no cluster host answers),"roles":[{name,owner,state,preferred_owners,memory_mib,priority,anti_affinity,failback,reason,…}],"storage":{NAME:{state:ok|lost|none|unknown,reason}},"standalone":[{vm,host,state:created-here|failed-over,running,memory_mib}]}',
    )
    .action(async (o: { dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const cluster = await ifClusterReachable(client, () => vmListReport(client))
      const standalone = await standaloneVmsNow(client, o.dir)
      if (cluster === null) {
        const r = { coordinator: null, source: 'none' as const, roles: [], storage: {}, standalone }
        return printResult(o.json, r, () => `no cluster host answers: its vm roles cannot be listed${formatStandaloneVms(standalone)}`)
      }
      const r = { ...cluster, standalone }
      printResult(o.json, r, () => `${formatVmList(r, r.storage)}${formatStandaloneVms(r.standalone)}`)
    })
}
