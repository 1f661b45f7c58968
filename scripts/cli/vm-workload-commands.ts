/**
 * `hvlab vm load`, `vm inspect` and `vm hang`: a running VM's guest as its host runs it —
 * change its workload live (memory dirtying, disk writes), look at it (memory hash, guest
 * heartbeats, disk writer counters), and make its guest hang (fault injection).
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { GUEST_HANG_MS_MAX, VM_DISK_IOPS_MAX } from '../../shared/protocol/cluster-limits.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { HOST_REQUEST_TIMEOUT_MS, roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, numberIn, out, printJson } from './options.js'
import { inspectOn, ownerOf, vmInspectNow } from './vm-queries.js'
import { roleOrStandalone } from './standalone-vms.js'

interface VmLoadOptions {
  dir: string
  dirtyMibS?: number
  hot?: number
  diskIops?: number
}

export function registerVmLoad(vm: Command): void {
  vm.command('load')
    .description(
      'change the guest workload of a running VM live: how fast it dirties memory, how concentrated the writes are, and how many block writes per second it does to its disk; options left out keep their value. The role keeps it: every later start (a failover, a restart) applies it again (a VM created on a standalone host has no role: that host keeps it, and starts it with it again)',
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
    .action(loadVm)
}

async function loadVm(name: string, o: VmLoadOptions): Promise<void> {
  if (o.dirtyMibS === undefined && o.hot === undefined && o.diskIops === undefined) {
    throw new HvlabError('HVLAB_E_USAGE', 'say what to change: --dirty-mib-s, --hot and/or --disk-iops')
  }
  const client = ControlClient.forDir(o.dir)
  const load = {
    ...(o.dirtyMibS !== undefined ? { dirty_mib_per_s: o.dirtyMibS } : {}),
    ...(o.hot !== undefined ? { hot_fraction: o.hot } : {}),
    ...(o.diskIops !== undefined ? { disk_iops: o.diskIops } : {}),
  }
  // A role keeps it first, so every later start applies it too (a guest restarted by a failover runs its applications again); a standalone host keeps its own VM's.
  const owner = await roleOrStandalone(
    client,
    o.dir,
    name,
    async () => {
      const owner = await ownerOf(client, name)
      await roleCommand(client, { op: 'set', name, changes: { load } })
      return owner
    },
    async (host) => host,
  )
  await client.request(owner, { t: 'vm-load-request', vm: name, hot_fraction: o.hot ?? null, ...load }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  const changed = [
    ...(o.dirtyMibS !== undefined ? [`dirties ${o.dirtyMibS} MiB/s`] : []),
    ...(o.hot !== undefined ? [`hot ${o.hot}`] : []),
    ...(o.diskIops !== undefined ? [`writes ${o.diskIops} blocks/s to its disk`] : []),
  ]
  out(`vm ${name} on ${owner} now ${changed.join(', ')}`)
}

export function registerVmInspect(vm: Command): void {
  vm.command('inspect')
    .description(
      'one VM as its host runs it: host, paused, memory hash, guest heartbeats, load, disk writer counters (a cluster VM, or a standalone host’s own)',
    )
    .argument('<name>', 'the VM name')
    .option(
      '--json',
      'machine-readable: {vm,host,running,paused,memory_mib,memory_sha256,guest_heartbeats,dirty_mib_per_s,disk_iops,disk:{state,disk_iops,writes_acked,writes_acked_per_s,writes_skipped,writes_skipped_per_s,writes_refused,…}|null,data_disks:[…, the same for disks 1…],…}',
    )
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const r = await roleOrStandalone(
        client,
        o.dir,
        name,
        () => vmInspectNow(client, name),
        (host, side) => inspectOn(client, host, name, side.memory_mib),
      )
      if (o.json) printJson(r)
      else printInspection(r)
    })
}

function printInspection(r: Omit<MessageOf<'vm-inspect-reply'>, 't'>): void {
  out(
    `vm ${r.vm} on ${r.host}: ${r.running ? (r.paused ? 'paused' : 'running') : 'stopped'}, ${r.memory_mib} MiB, sha256 ${r.memory_sha256 ?? '-'}, ${r.guest_heartbeats} guest heartbeats, load ${r.dirty_mib_per_s} MiB/s, disk ${r.disk_iops ?? 0} writes/s requested`,
  )
  if (!r.disk) return out('disk: not attached')
  const disks = [r.disk, ...(r.data_disks ?? [])]
  disks.forEach((d, n) =>
    out(
      `disk ${disks.length > 1 ? `${n} ` : ''}${d.array}/${d.volume}: ${d.state}, ${achievedRate(d)}, ${d.writes_acked} acked, ${d.writes_refused} refused (stale epoch), ${d.write_errors} errors, ${d.writes_skipped} skipped (queue full), ${d.in_flight} in flight, last acked seq ${d.last_acked_seq ?? '-'}, epoch ${d.last_epoch ?? '-'}${d.last_error ? `; last error: ${d.last_error}` : ''}`,
    ),
  )
}

/** "achieved 180.0 writes/s of 200 requested, 20.0 skipped/s" (the last interval the host measured). */
function achievedRate(d: NonNullable<MessageOf<'vm-inspect-reply'>['disk']>): string {
  if (d.writes_acked_per_s === undefined) return `${d.disk_iops} writes/s requested`
  return `achieved ${d.writes_acked_per_s.toFixed(1)} writes/s of ${d.disk_iops} requested, ${(d.writes_skipped_per_s ?? 0).toFixed(1)} skipped/s`
}

export function registerVmHang(vm: Command): void {
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
    .action(hangVm)
}

async function hangVm(name: string, o: { dir: string; forMs?: number; release?: boolean }): Promise<void> {
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
}
