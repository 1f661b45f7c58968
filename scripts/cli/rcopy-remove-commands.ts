/**
 * `hvlab rcopy remove GROUP` (removercopygroup) and `hvlab rcopy dismiss GROUP VOLUME`
 * (dismissrcopyvv), on every array that holds a side of the group. Both are refused while
 * the group is started, while a VM role's disk is in it (`hvlab vm remove` takes the
 * group with the VM), and while an array of the lab does not answer (its side would
 * stay). The volumes stay on the arrays.
 */
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { type DirOpt, type JsonOpt, arraysOf, ask } from './array-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, printResult } from './options.js'
import { vmRemoveHints, vmsUsing } from './storage-users.js'

interface GroupSide {
  array: string
  status: RcGroupStatus
}

/** The sides of `group` on the lab's arrays; refused when an array does not answer, or none holds it. */
async function groupSides(o: DirOpt, group: string, what: string): Promise<GroupSide[]> {
  const sides: GroupSide[] = []
  for (const array of await arraysOf(o)) {
    try {
      const r = await ask(o, array, { t: 'rc-status-request', group }, 'rc-status')
      for (const status of r.groups.filter((g) => g.group === group)) sides.push({ array, status })
    } catch (e) {
      if (HvlabError.has(e, 'HVLAB_E_NOT_FOUND')) continue
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot ${what}: array ${array} did not answer (${describeError(e)}); its side would stay; retry when it is up`,
      )
    }
  }
  if (sides.length === 0)
    throw new HvlabError('HVLAB_E_NOT_FOUND', `no array holds remote copy group ${group}; \`hvlab rcopy status\` lists the groups`)
  return sides
}

/** Refuses `what` while a side of the group is started. */
function refuseWhileStarted(sides: readonly GroupSide[], group: string, what: string): void {
  const started = sides.filter((s) => s.status.started).map((s) => s.array)
  if (started.length > 0)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cannot ${what}: group ${group} is started (${started.join(', ')}); stop it first: \`hvlab rcopy stop ${group}\``,
    )
}

/** Refuses `what` while a VM role's disk is in the group (or is `volume`). */
async function refuseWhileVmUses(o: DirOpt, group: string, what: string, volume?: string): Promise<void> {
  const vms = await vmsUsing(
    ControlClient.forDir(o.dir),
    what,
    (r) => r.storage?.kind === 'replicated' && (r.storage.group === group || r.storage.volume === volume),
  )
  if (vms.length > 0)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `cannot ${what}: the group holds the disk of ${vmRemoveHints(vms)}; \`hvlab vm remove\` removes the vm and its disk`,
    )
}

export function registerRcopyRemove(rcopy: Command): void {
  rcopy
    .command('remove')
    .description('remove a stopped remote copy group from both arrays (removercopygroup); its volumes are dismissed and stay on the arrays')
    .argument('<group>', 'group name')
    .addOption(dirOption())
    .option('--json', 'machine-readable: [{"array","volumes":[…]}] (the volumes each array dismissed)')
    .action(async (group: string, o: JsonOpt) => {
      const what = `remove group ${group}`
      const sides = await groupSides(o, group, what)
      await refuseWhileVmUses(o, group, what)
      refuseWhileStarted(sides, group, what)
      const targetsFirst = [...sides].sort(
        (a, b) => Number(a.status.role.startsWith('primary')) - Number(b.status.role.startsWith('primary')),
      )
      const done: { array: string; volumes: string[] }[] = []
      for (const s of targetsFirst)
        done.push({ array: s.array, volumes: (await ask(o, s.array, { t: 'rc-remove', group }, 'rc-removed')).volumes })
      printResult(o.json, done, () => {
        const kept = done.flatMap((d) => d.volumes.map((v) => `${v} on ${d.array}`))
        const stay =
          kept.length === 0 ? '' : `; its volumes stay: ${kept.join(', ')} (\`hvlab array volume remove ARRAY VOLUME --unpresent\`)`
        return `removed group ${group} from ${done.map((d) => d.array).join(' and ')}${stay}`
      })
    })
}

export function registerRcopyDismiss(rcopy: Command): void {
  rcopy
    .command('dismiss')
    .description('take a volume out of a stopped remote copy group on both arrays (dismissrcopyvv); the volume stays on each array')
    .argument('<group>', 'group name')
    .argument('<volume>', 'the volume’s name on the primary')
    .addOption(dirOption())
    .option('--json', 'machine-readable: [{"array","volume"}] (the name dismissed on each array)')
    .action(async (group: string, volume: string, o: JsonOpt) => {
      const what = `dismiss ${volume} from group ${group}`
      const sides = await groupSides(o, group, what)
      const names = sides.flatMap((s) => {
        const v = s.status.volumes.find((x) => x.volume === volume || x.remote_volume === volume)
        return v === undefined ? [] : [{ array: s.array, volume: v.volume }]
      })
      if (names.length === 0)
        throw new HvlabError(
          'HVLAB_E_NOT_FOUND',
          `volume ${volume} is not in group ${group}; \`hvlab rcopy status ${group}\` shows its volumes`,
        )
      await refuseWhileVmUses(o, group, what, volume)
      refuseWhileStarted(sides, group, what)
      for (const n of names) await ask(o, n.array, { t: 'rc-dismiss', group, volume: n.volume }, 'rc-status')
      printResult(
        o.json,
        names,
        () => `dismissed ${names.map((n) => `${n.volume} on ${n.array}`).join(' and ')} from group ${group}; the volumes stay`,
      )
    })
}
