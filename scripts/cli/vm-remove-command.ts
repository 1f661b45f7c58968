/**
 * `hvlab vm remove NAME [--keep-disk]`: removes a stopped VM role from the cluster and,
 * unless kept, its disk (agent/cluster/vm-removal.ts on the coordinator). It prints
 * exactly what was removed, and what was kept with the commands that remove it later;
 * it exits 1 when a step of the disk's removal failed (the role is gone all the same). A VM
 * a standalone host created (no role of that name) is removed there with its disk.
 */
import { REPLICA_BROKER_ROLE } from '../../shared/protocol/replica-limits.js'
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { currentIo, setExitCode } from './cli-io.js'
import { askAnyHost } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, printResult } from './options.js'
import { objectLines, removalCommands } from './removal-format.js'
import { roleOrStandalone, standaloneVmOp } from './standalone-vms.js'

/** The coordinator may take down a replicated disk on two arrays, step by step. */
export const REMOVE_TIMEOUT_MS = 90_000

type VmRemoveReply = MessageOf<'vm-remove-reply'>

export function registerVmRemove(vm: Command): void {
  vm.command('remove')
    .description(
      'remove a stopped VM role from the cluster (Remove-ClusterGroup + Remove-VM) and its disk: a replicated disk’s group rc-NAME and volume on both arrays, a CSV disk’s region; refused while it runs or migrates. A stopped VM of a standalone host (`vm create --on`) is removed there, with its disk',
    )
    .argument('<name>', 'the VM name')
    .option('--keep-disk', 'remove only the role; its disk stays (the output says how to remove it later)')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"vm","storage","removed":[{kind,name,on,host,group}],"kept":[…],"unfinished":{code,reason}|null}')
    .action(async (name: string, o: { dir: string; keepDisk?: boolean; json?: boolean }) => {
      if (name === REPLICA_BROKER_ROLE)
        throw new HvlabError(
          'HVLAB_E_USAGE',
          `${name} is the cluster's Replica Broker: \`hvlab replica server disable cluster\` removes it (refused while a failed-over VM replicates back through it)`,
        )
      const client = ControlClient.forDir(o.dir)
      await roleOrStandalone(
        client,
        o.dir,
        name,
        () => removeRole(client, name, o),
        async (host) => {
          if (o.keepDisk === true || o.json === true)
            throw new HvlabError(
              'HVLAB_E_USAGE',
              `vm ${name} is ${host}'s own and goes with its disk there: leave out --keep-disk and --json`,
            )
          await standaloneVmOp(client, host, name, 'remove')
        },
      )
    })
}

async function removeRole(client: ControlClient, name: string, o: { keepDisk?: boolean; json?: boolean }): Promise<void> {
  const { t: _t, ...r } = await askAnyHost(
    client,
    { t: 'vm-remove-request', name, keep_disk: o.keepDisk === true, forwarded: false },
    'vm-remove-reply',
    REMOVE_TIMEOUT_MS,
  )
  printResult(o.json, r, () => formatVmRemoval({ t: 'vm-remove-reply', ...r }))
  if (r.unfinished !== null) {
    currentIo().stderr(`hvlab: ${new HvlabError(r.unfinished.code, r.unfinished.reason).message}\n`)
    setExitCode(1)
  }
}

export function formatVmRemoval(r: VmRemoveReply): string {
  const lines = [`removed vm ${r.vm}:`, ...objectLines(r.removed)]
  if (r.storage === 'local') lines.push(`  (its storage was local: the lab keeps no disk object for it)`)
  if (r.kept.length > 0) {
    lines.push(r.unfinished === null ? 'kept its disk:' : `not removed (${r.unfinished.code}):`, ...objectLines(r.kept))
    lines.push('remove it later with:', ...removalCommands(r.kept).map((c) => `  ${c}`))
  }
  return lines.join('\n')
}
