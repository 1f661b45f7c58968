/**
 * `hvlab array volume remove ARRAY VOLUME [--unpresent]`: removes a volume from an array.
 * Refused while it is a VM's disk (`hvlab vm remove`), a CSV's volume (`hvlab csv remove`),
 * in a remote copy group (`hvlab rcopy dismiss`) or presented to hosts (the array names
 * them; `--unpresent` takes those presentations away first). Its fencing entries go with it.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { type DirOpt, ask } from './array-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'
import { csvsUsing, vmRemoveHints, vmsUsing } from './storage-users.js'

export function registerVolumeRemove(volume: Command): void {
  volume
    .command('remove')
    .description(
      'remove a volume; refused while it is a VM’s disk, a CSV’s volume, in a remote copy group or presented to hosts (--unpresent unpresents it first)',
    )
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .option('--unpresent', 'first take away its presentations to every host')
    .addOption(dirOption())
    .action(async (a: string, v: string, o: DirOpt & { unpresent?: boolean }) => {
      await refuseWhileUsed(o, a, v)
      const unpresented: string[] = []
      if (o.unpresent) {
        await refuseWhileInGroup(o, a, v)
        const listing = await ask(o, a, { t: 'volume-list' }, 'volume-listing')
        for (const host of listing.volumes.find((x) => x.volume === v)?.presented_to ?? []) {
          await ask(o, a, { t: 'lun-unpresent', volume: v, host }, 'lun-presentations')
          unpresented.push(host)
        }
      }
      await ask(o, a, { t: 'volume-remove', volume: v }, 'volume-listing')
      out(`removed volume ${v} from ${a}${unpresented.length > 0 ? ` (unpresented from ${unpresented.join(', ')} first)` : ''}`)
    })
}

/** Refuses while a VM's disk or a CSV is the volume. */
async function refuseWhileUsed(o: DirOpt, array: string, volume: string): Promise<void> {
  const client = ControlClient.forDir(o.dir)
  const what = `remove volume ${volume} from ${array}`
  const vms = await vmsUsing(client, what, (r) => {
    const s = r.storage
    if (s?.kind === 'replicated') return s.volume === volume && (s.arrays.primary === array || s.arrays.secondary === array)
    return s?.kind === 'csv' && s.volume === volume && s.array === array
  })
  if (vms.length > 0) throw new HvlabError('HVLAB_E_STATE', `cannot ${what}: it is the disk of ${vmRemoveHints(vms)}`)
  const csvs = await csvsUsing(client, what, (c) => c.array === array && c.volume === volume)
  if (csvs.length > 0)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cannot ${what}: it is the volume of CSV ${csvs[0]!.name}; remove the CSV with \`hvlab csv remove ${csvs[0]!.name}\``,
    )
}

/** Before unpresenting anything: the array refuses a volume in a group, so say so first. */
async function refuseWhileInGroup(o: DirOpt, array: string, volume: string): Promise<void> {
  const r = await ask(o, array, { t: 'rc-status-request' }, 'rc-status')
  const g = r.groups.find((x) => x.volumes.some((v) => v.volume === volume))
  if (g !== undefined)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `volume ${volume} is in remote copy group ${g.group}; dismiss it first: \`hvlab rcopy dismiss ${g.group} ${volume}\` (with the group stopped: \`hvlab rcopy stop ${g.group}\`)`,
    )
}
