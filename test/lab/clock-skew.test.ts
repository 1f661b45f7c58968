/**
 * The lab's clock tolerance (README: clock skew), with real processes and the soak's
 * ownership checker. db1 runs on a host whose clock is then skewed; the host is cut from
 * every other process (`partition --isolate`), the majority removes it and restarts db1
 * elsewhere, and the checker looks for a moment db1 ran on two hosts.
 *
 * - Within the tolerance (80 ms ahead, 0.05 % slow): no double owner.
 * - Beyond it: a clock running at a tenth of its speed (`--drift -0.9`). A lease is an
 *   interval the holder measures on its own clock from its request, so it lasts ten times
 *   as long in real time; the cut-off host keeps db1 running while the majority, which
 *   waited out the lease as the real clock measures it, runs it too. The checker must
 *   report that double owner.
 */
import tap from 'tap'
import { DOUBLE_OWNER_TOLERANCE_MS } from '../../scripts/soak/checker.js'
import { doubleOwners } from '../../scripts/soak/ownership-history.js'
import { startLab, type TestLab } from './lab-fixture.js'

const WAIT_MS = 60_000
const HOSTS = ['host-a1', 'host-a2', 'host-b1', 'host-b2']

async function ownerOfDb1(lab: TestLab): Promise<string | null> {
  const db1 = (await lab.vmList()).roles.find((r) => r.name === 'db1')
  return db1?.state === 'running' ? db1.owner : null
}

/** db1's owner with `skew` is cut off until db1 runs elsewhere, then healed; the double owners of that stretch. */
async function isolateOwnerWithSkew(t: Pick<typeof tap, 'equal' | 'ok'>, lab: TestLab, skew: string[]) {
  const owner = await lab.waitFor('db1 to run', async () => (await ownerOfDb1(lab)) ?? undefined, WAIT_MS)
  const from_ms = Date.now()
  t.equal((await lab.cli('clock', 'set', owner, ...skew)).code, 0, `clock set ${owner} ${skew.join(' ')}`)
  t.equal((await lab.cli('partition', '--isolate', owner)).code, 0)
  await lab.waitFor('db1 to run elsewhere', async () => ((await ownerOfDb1(lab)) ?? owner) !== owner || undefined, WAIT_MS)
  // Long enough for the cut-off host to stop db1 at half speed (its lease and grace take twice as long).
  await new Promise((r) => setTimeout(r, 8_000))
  t.equal((await lab.cli('clock', 'set', owner)).code, 0)
  t.equal((await lab.cli('heal')).code, 0)
  await lab.waitFor(
    'every host back in the cluster',
    async () => {
      const s = await lab.clusterStatus()
      return HOSTS.every((h) => s.hosts[h]?.holds_lease && s.hosts[h]?.members.length === HOSTS.length) || undefined
    },
    WAIT_MS,
  )
  // The whole timeline: a run that began before this stretch (db1 arriving on the host) counts.
  return doubleOwners(await lab.events(), DOUBLE_OWNER_TOLERANCE_MS).filter((d) => d.to_ms >= from_ms)
}

tap.test('within the clock tolerance no VM runs on two hosts; a clock at a tenth of its speed runs one twice', async (t) => {
  const { lab } = await startLab(t)
  t.equal((await lab.cli('vm', 'create', 'db1', '--memory-mib', '64', '--preferred', 'host-a1')).code, 0)
  t.equal((await lab.cli('vm', 'start', 'db1')).code, 0)
  t.equal(await ownerOfDb1(lab), 'host-a1')

  const within = await isolateOwnerWithSkew(t, lab, ['--offset-ms', '80', '--drift', '-0.0005'])
  t.same(within, [], 'within the tolerance: no double owner')

  const beyond = await isolateOwnerWithSkew(t, lab, ['--drift', '-0.9'])
  t.ok(
    beyond.some((d) => d.vm === 'db1' && d.to_ms - d.from_ms > 1_000),
    `beyond the tolerance the checker finds db1 on two hosts for over a second: ${JSON.stringify(beyond)}`,
  )
})
