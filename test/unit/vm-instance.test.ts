/** The small VM object and a host's set of VMs: guest heartbeats, memory limit, epoch fencing, stop-all on quorum loss. */
import t from 'tap'
import { GUEST_HEARTBEAT_INTERVAL_MS, VMS_PER_HOST_MAX, VmHost, VmInstance } from '../../agent/vm/vm-instance.js'
import { ManualClock } from '../../shared/clock.js'

t.test('a running VM ticks its guest heartbeat every second; a stopped or hung one does not', async (t) => {
  const clock = new ManualClock(0)
  const vm = new VmInstance('web1', 512, clock)
  vm.start()
  clock.advance(3 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, 3)
  vm.hang()
  clock.advance(5 * GUEST_HEARTBEAT_INTERVAL_MS)
  t.equal(vm.guestHeartbeats, 3, 'a hung guest stops beating')
  t.equal(vm.state, 'running', 'but the VM still looks running')
  vm.stop()
  t.equal(vm.state, 'stopped')
  t.equal(clock.pendingTimers(), 0, 'no timer left behind')
})

t.test('VmHost: memory limit, VM limit, stale epochs refused, stopAll on quorum loss', async (t) => {
  const clock = new ManualClock(0)
  const host = new VmHost('host-a1', 1024, clock)
  host.start('web1', 512, 1, 5)
  host.start('db1', 512, 1, 5)
  t.throws(() => host.start('big', 1, 1, 5), /host-a1 has 0 MiB free, vm big needs 1 MiB/, 'memory is a limit')
  t.throws(() => host.start('old', 1, 1, 4), /epoch 4: it has seen epoch 5; that coordinator is stale/, 'an older coordinator is fenced')
  host.start('web1', 512, 2, 6)
  t.same(
    host.list().map((v) => [v.name, v.op, v.epoch]),
    [
      ['db1', 1, 5],
      ['web1', 2, 6],
    ],
    'a repeated start is idempotent and takes the new op',
  )
  t.same(host.stopAll(), ['db1', 'web1'], 'quorum lost: every VM stops')
  t.same(host.list(), [])
  t.equal(clock.pendingTimers(), 0)
  host.stop('nothing-here')
  const many = new VmHost('host-a2', 1024 * 1024, clock)
  for (let i = 0; i < VMS_PER_HOST_MAX; i++) many.start(`vm${i}`, 32, 1, 1)
  t.throws(() => many.start('one-more', 32, 1, 1), new RegExp(`already runs ${VMS_PER_HOST_MAX} vms`), 'the VM count is a limit')
})
