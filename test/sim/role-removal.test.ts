/**
 * Removing a VM role on the simulated cluster (role-fixture.ts: every host runs the real
 * RoleService and VmAgent): refused while it runs; once stopped it goes, its record leaves
 * the replicated database, and it stays gone when the coordinator is killed and another
 * host restores the roles from that database — nothing runs it again. A seeded variant
 * removes a random stopped role and kills a random host. A failing seed is printed with
 * the command that reruns it (HVLAB_SEED, see seed.ts).
 */
import t from 'tap'
import type { VmRoleSpec } from '../../agent/cluster/vm-role.js'
import { RoleLab } from './role-fixture.js'
import { forEachSeed, seeds } from './seed.js'

const SPECS: VmRoleSpec[] = [
  { name: 'web1', memory_mib: 1024, preferred_owners: ['host-a1'] },
  { name: 'db1', memory_mib: 1024, preferred_owners: ['host-b1'] },
  { name: 'app1', memory_mib: 1024 },
]

/** Stops `vm`, removes it once stopped, and waits until its record has left the database; what went wrong, or null. */
async function stopAndRemove(lab: RoleLab, vm: string): Promise<string | null> {
  await lab.operate({ op: 'stop', name: vm })
  if (!(await lab.runUntil(() => lab.roles()?.find((r) => r.name === vm)?.state === 'stopped', 30_000)))
    return lab.problem ?? `${vm} did not stop`
  await lab.operate({ op: 'remove', name: vm })
  if (!(await lab.runUntil(() => lab.leader()?.service.roleRecordGone(vm) === true, 30_000)))
    return lab.problem ?? `the removal of ${vm} did not reach the database`
  return lab.problem
}

/** Runs until the other roles run once on a coordinator other than `old`; what is still wrong, or null. */
async function convergedWithout(lab: RoleLab, gone: string, old: string | null): Promise<string | null> {
  const left = SPECS.map((s) => s.name).filter((n) => n !== gone)
  const done = (): boolean => lab.leader() !== undefined && lab.leader()!.name !== old && lab.convergedProblem(left) === null
  await lab.runUntil(done, 120_000)
  if (lab.problem) return lab.problem
  if (lab.leader()?.name === old) return `${old} still coordinates`
  return lab.convergedProblem(left)
}

t.test('refused while running; removed once stopped; still gone after the coordinator is killed', async (t) => {
  const lab = new RoleLab({ seed: 7, net: { validate_messages: true } })
  t.equal(await lab.startRoles(SPECS), null, 'every role runs')
  await t.rejects(lab.operate({ op: 'remove', name: 'db1' }), {
    code: 'HVLAB_E_STATE',
    message: /it is running on host-\S+; stop it first/,
  })
  t.equal(await stopAndRemove(lab, 'db1'), null, 'stopped and removed')
  t.notOk(
    lab.roles()?.some((r) => r.name === 'db1'),
    'the coordinator no longer lists it',
  )
  const old = lab.leader()!.name
  lab.net.kill(old)
  t.equal(await convergedWithout(lab, 'db1', old), null, 'a new coordinator runs the other roles, and nothing else runs')
  t.notOk(
    lab.roles()?.some((r) => r.name === 'db1'),
    `the new coordinator ${lab.leader()?.name} restored the roles without it`,
  )
  t.notOk(lab.placement().has('db1'), 'no host runs it')
})

const SEEDS = seeds(import.meta.url, { base: 1, count: 50 })

t.test('seeded: remove a random role, kill a random host: it never comes back', async (t) => {
  const { failures, runs } = await forEachSeed(t, SEEDS, async (seed) => {
    const lab = new RoleLab({ seed, net: { delay_ms_min: 1, delay_ms_max: 20 } })
    const setup = await lab.startRoles(SPECS)
    if (setup) return { problem: `setup: ${setup}`, report: '' }
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(lab.net.rng() * xs.length)]!
    const vm = pick(SPECS).name
    const problem = await stopAndRemove(lab, vm)
    if (problem) return { problem, report: lab.trace.slice(-40).join('\n') }
    const victim = pick(['host-a1', 'host-a2', 'host-b1', 'host-b2'])
    const old = lab.leader()?.name === victim ? victim : null
    lab.net.kill(victim)
    const left = await convergedWithout(lab, vm, old)
    const back = lab.roles()?.some((r) => r.name === vm) || lab.placement().has(vm) ? `${vm} came back after killing ${victim}` : null
    return { problem: left ?? back, report: `removed ${vm}, killed ${victim}\n${lab.trace.slice(-40).join('\n')}` }
  })
  t.equal(failures, 0, `${runs} seeds`)
})
