/**
 * A coordinator's death must not restart every VM. One VM per host (each host is the
 * first preferred owner of one); kill -9 the coordinator host: the survivors take over
 * while their leases still run and carry them into the new view, so no survivor loses its
 * quorum lease (no `cluster.quorum-lost`), the VMs on the surviving hosts keep running —
 * same start operation, no `vm.started` / `vm.stopped` / `role.stopped-no-quorum` on them —
 * and only the dead host's VM is restarted elsewhere, on exactly one host. Then the
 * ordinary case: kill -9 a host that is not the coordinator, with the same checks. The
 * time from the view change that removed the dead host to its VM's restart is printed.
 */
import t from 'tap'
import type { LabClusterStatus } from '../../scripts/controller/lab-controller.js'
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import { startLab, type HostVm, type LabEvent, type TestLab } from './lab-fixture.js'

const HOSTS = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
const VM_OF: Record<string, string> = { 'host-a1': 'vm-a1', 'host-a2': 'vm-a2', 'host-b1': 'vm-b1', 'host-b2': 'vm-b2' }
const WAIT_MS = 60_000

type Inventories = Record<string, HostVm[]>
type TestHandle = Pick<typeof t, 'equal' | 'ok' | 'same' | 'comment'>

async function clusterOf(lab: TestLab, hosts: string[]): Promise<LabClusterStatus | undefined> {
  const s = await lab.clusterStatus()
  const views = hosts.map((h) => s.hosts[h])
  if (views.some((v) => !v?.holds_lease || v.members.join(',') !== hosts.join(','))) return undefined
  return s
}

/** Every VM running on the host `where` names, as that host itself reports. */
async function placed(lab: TestLab, where: (vm: string) => string): Promise<Inventories | undefined> {
  const list = await lab.vmList()
  if (list.source !== 'coordinator' || list.roles.length !== HOSTS.length) return undefined
  if (!list.roles.every((r) => r.state === 'running' && r.owner === where(r.name))) return undefined
  const inv = await lab.inventories()
  return list.roles.every((r) => inv[r.owner!]?.some((v) => v.role === r.name)) ? inv : undefined
}

const homeOf = (vm: string): string => Object.entries(VM_OF).find(([, v]) => v === vm)![0]

/** From the first view change that removed `victim` (its detection) to `restarted` (ms), or null. */
function restartAfterDetectionMs(events: LabEvent[], victim: string, restarted: (e: LabEvent) => boolean): number | null {
  const removal = events.find((e) => e.kind === 'cluster.view-changed' && (e.details.removed as string[]).includes(victim))
  const start = events.find(restarted)
  return removal && start ? start.at_ms - removal.at_ms : null
}

/**
 * Kill `victim`; wait until the survivors hold a lease in a view without it and its VM
 * runs on `fallback`; then check that the survivors' own VMs were never touched.
 */
async function killAndCheck(t: TestHandle, lab: TestLab, victim: string, fallback: string, alive: string[]): Promise<void> {
  const survivors = alive.filter((h) => h !== victim)
  const before = await lab.inventories()
  const seq = (await lab.events()).at(-1)!.seq
  t.equal((await lab.cli('kill', victim)).code, 0, `kill -9 ${victim}`)
  await lab.waitFor(`a view of ${survivors.join(',')} holding the lease`, () => clusterOf(lab, survivors), WAIT_MS)
  const lost = VM_OF[victim]!
  const after = await lab.waitFor(
    `${lost} running on ${fallback}`,
    () => placed(lab, (vm) => (vm === lost ? fallback : before[homeOf(vm)]?.some((v) => v.role === vm) ? homeOf(vm) : fallback)),
    WAIT_MS,
  )
  const restartedOnFallback = (e: LabEvent) => e.kind === 'vm.started' && e.source === fallback && e.details.vm === lost
  const events = await lab.eventsAfter(seq, (evs) => evs.some(restartedOnFallback))
  for (const host of survivors) {
    for (const vm of before[host] ?? []) {
      const now = after[host]?.find((v) => v.role === vm.role)
      t.ok(now, `${vm.role} still runs on ${host}`)
      t.equal(now?.op, vm.op, `${vm.role} on ${host} was not restarted (same start op ${vm.op})`)
      t.same(
        events
          .filter((e) => e.source === host && (e.kind === 'vm.started' || e.kind === 'vm.stopped') && e.details.vm === vm.role)
          .map((e) => e.kind),
        [],
        `no vm.started / vm.stopped for ${vm.role}`,
      )
    }
  }
  t.same(
    events.filter((e) => e.kind === 'role.stopped-no-quorum').map((e) => e.source),
    [],
    'no survivor stopped its vms for lack of quorum',
  )
  t.ok(events.some(restartedOnFallback), `${lost} was restarted on ${fallback}`)
  t.same(
    events.filter((e) => e.kind === 'cluster.quorum-lost' && survivors.includes(e.source)).map((e) => e.source),
    [],
    'no survivor lost its quorum lease (it was carried into the new view)',
  )
  const runsOn = survivors.filter((h) => after[h]?.some((v) => v.role === lost))
  t.same(runsOn, [fallback], `${lost} runs on exactly one host`)
  t.comment(
    `after killing ${victim}: ${lost} restarted ${restartAfterDetectionMs(events, victim, restartedOnFallback)} ms after the view change that removed it`,
  )
}

t.test("killing the coordinator host (then an ordinary host) does not restart the other hosts' vms", async (t) => {
  const { lab } = await startLab(t)
  const formed = await lab.waitFor('the cluster to form', () => clusterOf(lab, HOSTS), WAIT_MS)
  const coordinator = formed.hosts['host-a2']!.coordinator

  for (const [host, vm] of Object.entries(VM_OF)) {
    const others = HOSTS.filter((h) => h !== host)
    const c = await lab.cli('vm', 'create', vm, '--memory-mib', '512', '--preferred', [host, ...others].join(','))
    t.equal(c.code, 0, `create ${vm}: ${c.stderr}`)
    t.equal((await lab.cli('vm', 'start', vm)).code, 0, `start ${vm}`)
  }
  await lab.waitFor('every vm on its home host', () => placed(lab, homeOf), WAIT_MS)

  // 1. the coordinator dies: its VM goes to its next preferred owner, the others stay put
  const alive = [...HOSTS]
  const fallback1 = HOSTS.find((h) => h !== coordinator)!
  await killAndCheck(t, lab, coordinator, fallback1, alive)
  alive.splice(alive.indexOf(coordinator), 1)

  // 2. an ordinary host dies (not the new coordinator, not where the first VM went)
  const s = await lab.clusterStatus()
  const coordinator2 = s.hosts[alive[0]!]!.coordinator
  const victim = alive.find((h) => h !== coordinator2 && h !== fallback1)!
  const fallback2 = HOSTS.filter((h) => h !== victim).find((h) => alive.includes(h))!
  await killAndCheck(t, lab, victim, fallback2, alive)
})
