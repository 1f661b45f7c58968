/**
 * Liveness apart from the data plane (issue 12): while the lab's data plane runs flat out —
 * a full-speed live migration of a large, busy VM and, at the same time, an array resync —
 * no host is taken for dead and none loses quorum. The cluster's heartbeats and lease
 * renewals share each host's event loop (and the machine's CPU) with the migration's
 * sending, the page diff and apply workers, the guest workload and the arrays' resync.
 *
 * The resync: a volume of its own in remote copy group rc-load is synced, the group is
 * stopped, RESYNC_MIB of it is written (tracked, not sent), and `rcopy start` resends it
 * while the VM migrates. The test checks that both really ran (the migration completed, the
 * group resent at least what was written) and then the timeline from the start of the load
 * to its end: no cluster.node-down, no cluster.quorum-lost. No duration is asserted.
 */
import t, { type Test } from 'tap'
import { ControlClient } from '../../scripts/cli/control-client.js'
import type { MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { startLab, type TestLab } from './lab-fixture.js'

/** Guest memory of the migrating VM. See the README's note on CI size. */
const VM_MIB = 1024
const DIRTY_MIB_PER_S = 50
/** Written to the stopped group's volume, then resynced during the migration. */
const RESYNC_MIB = 64
const BLOCK_BYTES = 4096
const WRITE_BLOCKS = 256
const VOLUME = 'load1'
const GROUP = 'rc-load'
const WAIT_MS = 300_000
const LIVENESS_LOSS = new Set(['cluster.node-down', 'cluster.quorum-lost'])

const lastSeq = async (lab: TestLab): Promise<number> => Math.max(0, ...(await lab.events()).map((e) => e.seq))

async function cliOk(t: Test, lab: TestLab, ...args: string[]): Promise<string> {
  const r = await lab.cli(...args)
  t.equal(r.code, 0, `hvlab ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

async function groupOn(lab: TestLab, array: string): Promise<RcGroupStatus> {
  const r = await ControlClient.forDir(lab.dir).request(array, { t: 'rc-status-request', group: GROUP }, 'rc-status')
  return r.groups[0]!
}

/** A synced group rc-load holding VOLUME, stopped, with RESYNC_MIB written since: a resync waiting to run. */
async function pendingResync(t: Test, lab: TestLab): Promise<void> {
  await cliOk(t, lab, 'array', 'volume', 'create', 'array-a', VOLUME, '--size', `${RESYNC_MIB}MiB`)
  await cliOk(t, lab, 'array', 'present', 'array-a', VOLUME, 'host-a1')
  await cliOk(t, lab, 'rcopy', 'create', GROUP, '--primary', 'array-a', '--secondary', 'array-b', '--mode', 'sync')
  await cliOk(t, lab, 'rcopy', 'admit', GROUP, VOLUME)
  await cliOk(t, lab, 'rcopy', 'start', GROUP)
  await cliOk(t, lab, 'rcopy', 'stop', GROUP)
  const control = ControlClient.forDir(lab.dir)
  const blocks = (RESYNC_MIB * 1024 * 1024) / BLOCK_BYTES
  for (let block = 0; block < blocks; block += WRITE_BLOCKS) {
    const pattern = `load-${block}`
    await control.request(
      'array-a',
      { t: 'block-write-pattern', volume: VOLUME, host: 'host-a1', epoch: 1, block, blocks: WRITE_BLOCKS, pattern },
      'block-written',
      30_000,
    )
  }
  const g = await groupOn(lab, 'array-a')
  t.equal(g.bytes_behind, RESYNC_MIB * 1024 * 1024, `${RESYNC_MIB} MiB waits to be resynced`)
}

t.test('a full-speed live migration of a large busy VM and an array resync at once: no host down, no quorum lost', async (t) => {
  const { lab } = await startLab(t)
  await cliOk(t, lab, 'vm', 'create', 'big', '--memory-mib', String(VM_MIB), '--preferred', 'host-a1')
  await cliOk(t, lab, 'vm', 'start', 'big')
  await lab.vmRunningOn('big', ['host-a1'], WAIT_MS)
  await pendingResync(t, lab)
  await cliOk(t, lab, 'vm', 'load', 'big', '--dirty-mib-s', String(DIRTY_MIB_PER_S), '--hot', '0.5')
  const resynced_before = (await groupOn(lab, 'array-a')).bytes_resynced_total
  const seq = await lastSeq(lab)

  const [migrated, resync] = await Promise.all([
    lab.cli('vm', 'migrate', 'big', '--to', 'host-a2', '--json', '--timeout-s', String(WAIT_MS / 1000)),
    lab.cli('rcopy', 'start', GROUP),
  ])
  t.equal(migrated.code, 0, `vm migrate: ${migrated.stderr}`)
  const result = JSON.parse(migrated.stdout) as MigrationResultMessage
  t.equal(result.outcome, 'completed', `the live migration completed: ${result.reason}`)
  t.equal(result.rounds[0]?.dirty_pages, (VM_MIB * 1024 * 1024) / 4096, 'round 0 sent all its memory')
  t.equal(resync.code, 0, `rcopy start (the resync): ${resync.stderr}`)
  const g = await groupOn(lab, 'array-a')
  t.ok(g.bytes_resynced_total - resynced_before >= RESYNC_MIB * 1024 * 1024, `the resync resent the ${RESYNC_MIB} MiB written`)
  t.ok(
    g.volumes.every((v) => v.state === 'Synced'),
    'the group is Synced again',
  )

  const lost = (await lab.events()).filter((e) => e.seq > seq && LIVENESS_LOSS.has(e.kind))
  t.same(
    lost.map((e) => `${e.source} ${e.kind} ${JSON.stringify(e.details)}`),
    [],
    'no host was taken for dead and none lost quorum during the load',
  )
  await cliOk(t, lab, 'vm', 'load', 'big', '--dirty-mib-s', '0')
})
