/**
 * `hvlab replica size` on a host (agent/replica/churn-measurements.ts), on a manual clock
 * at timeScale 0.1: the writes the VM's disk completes while the measurement runs are
 * counted by cycle of each frequency as the lab runs it (a 30 s cycle lasts 3 s), a
 * refused write and one after the end are not; a VM that leaves the host interrupts it
 * with HVLAB_E_SIZING_INTERRUPTED; what cannot be measured is refused clearly.
 */
import t from 'tap'
import { ChurnMeasurements, SIZING_MEASUREMENTS_MAX, type SizeReply } from '../../agent/replica/churn-measurements.js'
import type { DiskWriteRecord } from '../../agent/vm/disk-write-record.js'
import { ManualClock } from '../../shared/clock.js'
import { messageDef } from '../../shared/protocol/messages.js'
import { SIZING_DURATION_MS_MAX } from '../../shared/protocol/replica-size-messages.js'

const BS = 4096
const checked = (reply: SizeReply): SizeReply => messageDef(reply.t)!.schema.parse(reply) as SizeReply

function rig() {
  const clock = new ManualClock(5_000.25) // a real clock's time has fractions
  const running = new Set(['web1', 'web2', 'nodisk'])
  const measurements = new ChurnMeasurements({
    host: 'host-a1',
    clock,
    time_scale: 0.1,
    running: () => [...running],
    diskOf: (vm) => (vm === 'nodisk' ? undefined : { block_size_bytes: BS, blocks: 4096 }),
  })
  measurements.start()
  // every reply as the wire checks it
  const m = {
    begin: (vm: string, ms: number) => checked(measurements.begin(vm, ms)),
    status: (vm: string) => checked(measurements.status(vm)),
  }
  let seq = 0
  const write = (vm: string, block: number, outcome: 'acked' | 'failed' | 'refused' = 'acked'): void => {
    const r: DiskWriteRecord = { vm, seq: seq++, epoch: 1, block, value: 0 }
    measurements.issued()
    measurements.completed(r, outcome)
  }
  return { clock, running, m, write }
}

t.test('the writes of the measurement, cut in the cycles the lab runs (timeScale 0.1)', async (t) => {
  const { clock, m, write } = rig()
  const begun = m.begin('web1', 60_000) // one lab minute: 6 s
  t.match(begun, { t: 'replica-size-reply', vm: 'web1', host: 'host-a1', state: 'measuring', measured_ms: 6_000, frequencies: [] })
  write('web2', 1) // another VM: not this measurement
  for (let s = 0; s < 6; s++) {
    write('web1', 0) // a hot block, every second
    write('web1', 100 + s) // a new block every second
    write('web1', 999, 'refused') // wrote nothing
    clock.advance(1_000)
  }
  write('web1', 3000) // after the end
  const done = m.status('web1')
  t.match(done, { state: 'done', writes: 12, elapsed_ms: 6_000, error: null })
  t.match(done.frequencies, [
    { frequency_ms: 30_000, cycle_ms: 3_000, cycles: 2, full_cycles: 2, peak_cycle_bytes: 4 * BS, total_bytes: 8 * BS },
    { frequency_ms: 300_000, cycle_ms: 30_000, cycles: 1, full_cycles: 0, peak_cycle_bytes: 7 * BS, total_bytes: 7 * BS },
    { frequency_ms: 900_000, cycle_ms: 90_000, cycles: 1, full_cycles: 0, total_bytes: 7 * BS },
  ])
  t.equal(done.frequencies[0]!.peak_bytes_per_s, (4 * BS) / 3, 'the busiest 3 s cycle over 3 s')
  t.equal(done.frequencies[1]!.mean_bytes_per_s, (7 * BS) / 6)
  t.equal(m.begin('web1', 1_000).state, 'measuring', 'once done, the VM can be measured again')
})

t.test('a VM that leaves the host interrupts its measurement', async (t) => {
  const { clock, running, m, write } = rig()
  m.begin('web1', 60_000)
  write('web1', 1)
  clock.advance(1_000.5)
  t.match(m.status('web1'), { state: 'measuring', elapsed_ms: 1_001 }, 'whole ms on the wire')
  running.delete('web1')
  clock.advance(1_000)
  t.match(m.status('web1'), {
    state: 'interrupted',
    error_code: 'HVLAB_E_SIZING_INTERRUPTED',
    error: /web1 stopped or left host-a1/,
    frequencies: [],
  })
  write('web1', 2)
  clock.advance(10_000)
  t.equal(m.status('web1').state, 'interrupted', 'and it stays so')
})

t.test('refused clearly: not here, no disk, already measuring, a bad duration, too many at once, never measured', async (t) => {
  const { m } = rig()
  t.throws(() => m.begin('other', 1_000), { code: 'HVLAB_E_STATE', message: /does not run on host-a1/ })
  t.throws(() => m.begin('nodisk', 1_000), { code: 'HVLAB_E_STATE', message: /no disk/ })
  t.throws(() => m.begin('web1', 0), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.begin('web1', SIZING_DURATION_MS_MAX + 1), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.begin('web1', 1.5), { code: 'HVLAB_E_USAGE' })
  t.throws(() => m.status('web1'), { code: 'HVLAB_E_NOT_FOUND' })
  m.begin('web1', 1_000)
  t.throws(() => m.begin('web1', 1_000), { code: 'HVLAB_E_STATE', message: /being measured on host-a1 already/ })
})

t.test('at most SIZING_MEASUREMENTS_MAX at once on a host', async (t) => {
  const clock = new ManualClock(0)
  const vms = Array.from({ length: SIZING_MEASUREMENTS_MAX + 1 }, (_, i) => `vm${i}`)
  const m = new ChurnMeasurements({
    host: 'h',
    clock,
    time_scale: 1,
    running: () => vms,
    diskOf: () => ({ block_size_bytes: BS, blocks: 8 }),
  })
  for (const vm of vms.slice(0, -1)) m.begin(vm, 1_000)
  t.throws(() => m.begin(vms.at(-1)!, 1_000), { code: 'HVLAB_E_BACKPRESSURE' })
  clock.advance(1_000)
  t.equal(m.begin(vms.at(-1)!, 1_000).state, 'measuring', 'once they end, another may begin')
})
