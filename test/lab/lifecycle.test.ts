/**
 * The removal lifecycle in one default two-site lab, through the real CLI: `vm remove` is
 * refused while the VM runs, and once it is stopped removes the role and its replicated
 * disk (group rc-NAME and the volume on both arrays); `rcopy remove` / `rcopy dismiss` /
 * `array volume remove` are refused while the group is started, while a VM's disk is in
 * it, while the volume is in a group or presented, and succeed once not; `vm remove
 * --keep-disk` keeps the disk and says how to remove it; `csv remove` is refused while a
 * region is allocated. Removing what does not exist exits 1. After `hvlab down` and `up
 * --detach` on the same dir, everything removed stays gone and what was kept is there.
 */
import t from 'tap'
import { runCli, startLab, type CliResult, type TestLab } from './lab-fixture.js'

const WAIT_MS = 120_000
const ARRAYS = ['array-a', 'array-b']

const ok = (t: Tap, r: CliResult, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr}`)
type Tap = Pick<typeof t, 'equal' | 'match'>
/** A refusal: exit 1 and a message matching `why`. */
const refused = (t: Tap, r: CliResult, why: RegExp, what: string) => {
  t.equal(r.code, 1, `${what} is refused (exit 1): ${r.stdout}${r.stderr}`)
  t.match(r.stderr, why, `${what}: says why and what to do`)
}

/** The groups each array holds, by name. */
async function groups(lab: TestLab): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  for (const a of ARRAYS)
    out[a] = (await lab.control().request(a, { t: 'rc-status-request' }, 'rc-status', 5000)).groups.map((g) => g.group)
  return out
}

async function volumes(lab: TestLab, array: string): Promise<string[]> {
  return (await lab.control().request(array, { t: 'volume-list' }, 'volume-listing', 5000)).volumes.map((v) => v.volume)
}

const roleState = (lab: TestLab, vm: string, state: string) =>
  lab.waitFor(`${vm} ${state}`, async () => ((await lab.role(vm))?.state === state ? true : undefined), WAIT_MS)

t.test('remove a vm, its disk, remote copy groups, volumes and a CSV; refusals; durable across down/up', async (t) => {
  const { lab } = await startLab(t)

  // 1. vm remove: refused while running, then the role and its replicated disk go
  ok(t, await lab.cli('vm', 'create', 'web1', '--memory-mib', '32', '--preferred', 'host-a1'), 'vm create web1')
  ok(t, await lab.cli('vm', 'create', 'keep1', '--memory-mib', '32', '--preferred', 'host-b1'), 'vm create keep1')
  ok(t, await lab.cli('vm', 'start', 'web1'), 'vm start web1')
  await lab.vmRunningOn('web1', ['host-a1'], WAIT_MS)
  refused(
    t,
    await lab.cli('vm', 'remove', 'web1'),
    /cannot remove vm web1: it is running on host-a1; stop it first: `hvlab vm stop web1`/,
    'vm remove while running',
  )
  t.match(await lab.role('web1'), { state: 'running' }, 'it still runs')
  ok(t, await lab.cli('vm', 'stop', 'web1'), 'vm stop web1')
  await roleState(lab, 'web1', 'stopped')
  const removed = await lab.cli('vm', 'remove', 'web1')
  ok(t, removed, 'vm remove web1')
  for (const line of [
    'vm role web1',
    'remote copy group rc-web1 on array-a',
    'remote copy group rc-web1 on array-b',
    'volume web1-disk0 on array-a',
    'volume web1-disk0 on array-b',
  ])
    t.match(removed.stdout, line, `the output lists: ${line}`)
  t.equal(await lab.role('web1'), undefined, 'the role is gone')
  for (const a of ARRAYS) {
    t.notOk((await groups(lab))[a]!.includes('rc-web1'), `rc-web1 is gone from ${a}`)
    t.notOk((await volumes(lab, a)).includes('web1-disk0'), `web1-disk0 is gone from ${a}`)
  }
  refused(t, await lab.cli('vm', 'remove', 'web1'), /no vm named web1/, 'removing it again')

  // 2. a hand-made group: refusals while started, in a group, presented; then dismiss, volume remove, rcopy remove
  ok(t, await lab.cli('array', 'volume', 'create', 'array-a', 'v1', '--size', '1MiB'), 'volume create')
  ok(t, await lab.cli('array', 'present', 'array-a', 'v1', 'host-a1'), 'present')
  ok(t, await lab.cli('rcopy', 'create', 'g1', '--primary', 'array-a', '--secondary', 'array-b', '--mode', 'sync'), 'rcopy create')
  ok(t, await lab.cli('rcopy', 'admit', 'g1', 'v1'), 'rcopy admit')
  ok(t, await lab.cli('rcopy', 'start', 'g1'), 'rcopy start')
  refused(
    t,
    await lab.cli('rcopy', 'remove', 'g1'),
    /group g1 is started .*; stop it first: `hvlab rcopy stop g1`/,
    'rcopy remove while started',
  )
  refused(t, await lab.cli('rcopy', 'dismiss', 'g1', 'v1'), /stop it first: `hvlab rcopy stop g1`/, 'rcopy dismiss while started')
  refused(
    t,
    await lab.cli('array', 'volume', 'remove', 'array-a', 'v1'),
    /in remote copy group g1; dismiss it first: `hvlab rcopy dismiss g1 v1`/,
    'volume remove in a group',
  )
  ok(t, await lab.cli('rcopy', 'stop', 'g1'), 'rcopy stop')
  ok(t, await lab.cli('rcopy', 'dismiss', 'g1', 'v1'), 'rcopy dismiss')
  const g1 = await lab.control().request('array-a', { t: 'rc-status-request', group: 'g1' }, 'rc-status')
  t.same(g1.groups[0]?.volumes, [], 'g1 holds no volume on array-a')
  refused(
    t,
    await lab.cli('array', 'volume', 'remove', 'array-a', 'v1'),
    /presented to host-a1; unpresent it/,
    'volume remove while presented',
  )
  ok(t, await lab.cli('array', 'volume', 'remove', 'array-a', 'v1', '--unpresent'), 'volume remove --unpresent')
  ok(t, await lab.cli('array', 'volume', 'remove', 'array-b', 'v1'), 'the secondary copy, never presented')
  ok(t, await lab.cli('rcopy', 'remove', 'g1'), 'rcopy remove')
  for (const a of ARRAYS) t.notOk((await groups(lab))[a]!.includes('g1'), `g1 is gone from ${a}`)
  refused(t, await lab.cli('rcopy', 'remove', 'g1'), /no array holds remote copy group g1/, 'removing it again')

  // 3. a vm's group is refused; --keep-disk keeps the disk and says how to remove it
  refused(
    t,
    await lab.cli('rcopy', 'remove', 'rc-keep1'),
    /holds the disk of vm keep1 \(`hvlab vm remove keep1`\)/,
    'rcopy remove of a vm’s group',
  )
  refused(
    t,
    await lab.cli('array', 'volume', 'remove', 'array-b', 'keep1-disk0'),
    /it is the disk of vm keep1/,
    'volume remove of a vm’s disk',
  )
  const kept = await lab.cli('vm', 'remove', 'keep1', '--keep-disk')
  ok(t, kept, 'vm remove --keep-disk')
  t.match(
    kept.stdout,
    /kept its disk:[\s\S]*remote copy group rc-keep1 on array-b[\s\S]*hvlab rcopy remove rc-keep1/,
    'says what was kept and how to remove it',
  )
  t.ok((await groups(lab))['array-b']!.includes('rc-keep1'), 'rc-keep1 is still there')
  ok(t, await lab.cli('rcopy', 'stop', 'rc-keep1'), 'stop rc-keep1')
  ok(t, await lab.cli('rcopy', 'remove', 'rc-keep1'), 'remove rc-keep1 once its vm is gone')
  ok(t, await lab.cli('array', 'volume', 'remove', 'array-a', 'keep1-disk0', '--unpresent'), 'keep1-disk0 removed from array-a')

  // 4. csv remove: refused while a region is allocated, then the CSV and its volume go
  ok(t, await lab.cli('csv', 'create', 'c1', '--array', 'array-a', '--size-gib', '1'), 'csv create')
  ok(t, await lab.cli('csv', 'allocate', 'c1', '--region', 'r1', '--size-mib', '4'), 'csv allocate')
  refused(
    t,
    await lab.cli('array', 'volume', 'remove', 'array-a', 'csv-c1', '--unpresent'),
    /volume of CSV c1; remove the CSV/,
    'volume remove of a CSV’s volume',
  )
  refused(t, await lab.cli('csv', 'remove', 'c1'), /regions r1 are allocated in it/, 'csv remove with a region')
  ok(t, await lab.cli('csv', 'release', 'c1', '--region', 'r1'), 'csv release')
  const csvGone = await lab.cli('csv', 'remove', 'c1')
  ok(t, csvGone, 'csv remove')
  t.match(csvGone.stdout, /removed CSV c1 .*its volume csv-c1 on array-a was unpresented from .* and was removed/)
  t.notOk((await volumes(lab, 'array-a')).includes('csv-c1'), 'csv-c1 is gone from array-a')

  // 5. what does not exist
  refused(t, await lab.cli('csv', 'remove', 'c1'), /there is no CSV c1/, 'csv remove again')
  refused(t, await lab.cli('array', 'volume', 'remove', 'array-a', 'nosuch'), /volume "nosuch" does not exist/, 'volume remove of nothing')
  refused(t, await lab.cli('rcopy', 'dismiss', 'nosuch', 'v1'), /no array holds remote copy group nosuch/, 'dismiss from no group')

  // 6. durable: down and up again on the same dir
  ok(t, await lab.cli('down'), 'down')
  const up = await runCli(['up', '--detach', '--dir', lab.dir])
  t.equal(up.code, 0, `up again: ${up.stderr}`)
  const roles = await lab.waitFor(
    'the role list',
    async () => ((await lab.vmList()).source === 'coordinator' ? await lab.vmList() : undefined),
    WAIT_MS,
  )
  t.same(
    roles.roles.map((r) => r.name),
    [],
    'no vm came back',
  )
  const after = await groups(lab)
  t.same(after, { 'array-a': [], 'array-b': [] }, 'no group came back')
  t.same(await volumes(lab, 'array-a'), [], 'no volume came back on array-a')
  t.same(await volumes(lab, 'array-b'), ['keep1-disk0'], 'array-b still has the kept disk')
  const csvs = await lab.control().request('host-a1', { t: 'csv-list-request' }, 'csv-list-reply', 5000)
  t.same(csvs.csvs, [], 'no CSV came back')
})
