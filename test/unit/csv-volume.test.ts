import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import { CsvVolume, type CsvVolumeDeps } from '../../agent/csv/csv-volume.js'
import type { CsvEntry } from '../../agent/csv/csv-record.js'
import { isUnreachable } from '../../agent/clx/array-admin.js'

const BS = 512

/** One array volume, a path that can be cut, and a coordinator node that does I/O for others. */
function rig(node = 'host-b1') {
  const disk = Buffer.alloc(BS * 100)
  const entry: CsvEntry = {
    name: 'v1',
    array: 'array-a',
    volume: 'csv-v1',
    size_bytes: BS * 100,
    block_size_bytes: BS,
    owner: 'host-a1',
    regions: new Map([['vm1', { offset_block: 10, blocks: 20 }]]),
  }
  const state = {
    cut: false,
    ownerDown: 0,
    events: [] as string[],
    redirected: [] as { owner: string; epoch: number }[],
    inFlight: 0,
    maxInFlight: 0,
  }
  const unreachable = () => new HvlabError('HVLAB_E_CLOSED', 'array array-a is not connected to this host')
  let owner: CsvVolume | undefined
  const deps: CsvVolumeDeps = {
    node,
    csv: 'v1',
    entry: () => entry,
    direct: {
      async write(volume, block, data) {
        if (state.cut) throw unreachable()
        Buffer.from(data).copy(disk, block * BS)
      },
      async read(volume, block, blocks) {
        if (state.cut) throw unreachable()
        return Buffer.from(disk.subarray(block * BS, (block + blocks) * BS))
      },
    },
    coordinator: {
      async write(o, w, data) {
        if (state.ownerDown > 0) {
          state.ownerDown--
          throw new HvlabError('HVLAB_E_TIMEOUT', `${o} did not answer`)
        }
        state.redirected.push({ owner: o, epoch: w.epoch })
        state.inFlight++
        state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)
        await new Promise((r) => setImmediate(r))
        state.inFlight--
        await owner!.serveWrite(node, { ...w, data })
      },
      async read(o, r) {
        return owner!.serveRead(node, r)
      },
      async region() {
        return null
      },
    },
    unreachable: isUnreachable,
    now: () => 0,
    sleep: async () => {},
    emitEvent: (kind) => state.events.push(kind),
    awaitRegion: async () => {},
    retry_delay_ms: 1,
    retry_attempts_max: 3,
    redirect_in_flight_max: 2,
    redirect_waiting_max: 4,
    served_in_flight_max: 8,
  }
  // The coordinator node's own volume: same array, a path that is never cut.
  owner = new CsvVolume({
    ...deps,
    node: 'host-a1',
    direct: {
      write: async (v, b, d) => void Buffer.from(d).copy(disk, b * BS),
      read: async (v, b, n) => Buffer.from(disk.subarray(b * BS, (b + n) * BS)),
    },
  })
  return { v: new CsvVolume(deps), disk, state, entry }
}

const data = (fill: number, blocks = 1): Buffer => Buffer.alloc(BS * blocks, fill)

t.test('direct while the path works; redirected through the coordinator when cut; back to direct after a probe', async (t) => {
  const { v, disk, state } = rig()
  t.same(await v.write({ region: 'vm1', block: 0, blocks: 1, data: data(1), epoch: 5 }), { path: 'direct', via: null })
  t.equal(disk[10 * BS], 1, 'region block 0 is volume block 10')
  state.cut = true
  t.same(await v.write({ region: 'vm1', block: 1, blocks: 1, data: data(2), epoch: 5 }), { path: 'redirected', via: 'host-a1' })
  t.equal(disk[11 * BS], 2, 'the redirected write landed')
  t.same(state.redirected, [{ owner: 'host-a1', epoch: 5 }], "the writer's epoch travels with it")
  t.equal(v.state().mode, 'Redirected')
  t.equal(v.state().reason, 'NoDiskConnectivity')
  const r = await v.read({ region: 'vm1', block: 1, blocks: 1 })
  t.equal(r.path, 'redirected')
  t.equal(r.data[0], 2)
  await v.probe()
  t.equal(v.state().mode, 'Redirected', 'still cut: stays redirected')
  state.cut = false
  await v.probe()
  t.equal(v.state().mode, 'Direct')
  t.same(state.events, ['csv.io-redirected', 'csv.io-direct'], 'one event per switch')
  t.equal(v.state().bytes_direct, BS)
  t.equal(v.state().bytes_redirected, BS, 'writes counted (the redirected read is not a write)')
})

t.test('checkDirect tries the path whatever the mode, says why it failed, and switches the mode', async (t) => {
  const { v, state } = rig()
  t.same(await v.checkDirect(), { direct: true, detail: '' }, 'direct: reachable')
  state.cut = true
  const cut = await v.checkDirect()
  t.equal(cut.direct, false)
  t.ok(cut.detail.length > 0, `with why: ${cut.detail}`)
  t.equal(v.state().mode, 'Redirected', 'a failed check switches to Redirected without waiting for an I/O')
  state.cut = false
  t.same(await v.checkDirect(), { direct: true, detail: '' })
  t.equal(v.state().mode, 'Direct', 'and back')
  t.same(state.events, ['csv.io-redirected', 'csv.io-direct'])
})

t.test('I/O outside the region or with the wrong size is refused before anything moves', async (t) => {
  const { v, disk } = rig()
  await t.rejects(v.write({ region: 'vm1', block: 19, blocks: 2, data: data(9, 2), epoch: 1 }), /outside the region/)
  await t.rejects(v.write({ region: 'vm1', block: 0, blocks: 2, data: data(9, 1), epoch: 1 }), /bytes of data for 2 blocks/)
  await t.rejects(v.write({ region: 'nope', block: 0, blocks: 1, data: data(9), epoch: 1 }), /has no region nope/)
  t.equal(disk.indexOf(9), -1, 'nothing written')
})

t.test('a coordinator that does not answer is retried a bounded number of times', async (t) => {
  const { v, state } = rig()
  state.cut = true
  state.ownerDown = 2
  t.equal(
    (await v.write({ region: 'vm1', block: 0, blocks: 1, data: data(3), epoch: 1 })).path,
    'redirected',
    'lands after two failed attempts',
  )
  state.ownerDown = 100
  await t.rejects(v.write({ region: 'vm1', block: 0, blocks: 1, data: data(3), epoch: 1 }), /did not answer after 4 attempts/)
})

t.test('a refusal (e.g. a fenced epoch) is not redirected', async (t) => {
  const { v, state } = rig()
  ;(v as unknown as { d: CsvVolumeDeps }).d.direct.write = async () => {
    throw new HvlabError('HVLAB_E_REFUSED', 'write refused: reservation epoch 1 < 2')
  }
  await t.rejects(v.write({ region: 'vm1', block: 0, blocks: 1, data: data(4), epoch: 1 }), /epoch 1 < 2/)
  t.equal(v.state().mode, 'Direct')
  t.same(state.redirected, [])
})

t.test('redirected I/O is bounded in flight and in waiting', async (t) => {
  const { v, state } = rig()
  state.cut = true
  await v.write({ region: 'vm1', block: 0, blocks: 1, data: data(1), epoch: 1 }) // switch to redirected
  const many = Array.from({ length: 6 }, (_, i) => v.write({ region: 'vm1', block: i, blocks: 1, data: data(i), epoch: 1 }))
  const late = v.write({ region: 'vm1', block: 7, blocks: 1, data: data(7), epoch: 1 }).then(
    () => 'accepted',
    (e: unknown) => String(e),
  )
  await Promise.all(many)
  t.match(await late, /in flight and 4 waiting/, 'beyond in-flight + waiting: refused at once')
  t.ok(state.maxInFlight <= 2, `at most 2 in flight (saw ${state.maxInFlight})`)
})
