/**
 * CLX service and the VM's default storage against two REAL array cores in-process:
 * RemoteCopyService + VolumeStore + LunMasking per array, wired back to back over an
 * in-memory link (as in array-resync-compare.test.ts). The host's ArrayAdmin port is a
 * small adapter that hands each admin request to those objects (what the array process
 * does for the operator); an array marked `down` does not answer (HVLAB_E_TIMEOUT).
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LunMasking } from '../../array-emulator/lun-masking.js'
import type { RemoteCopyService } from '../../array-emulator/remote-copy-service.js'
import type { VolumeStore } from '../../array-emulator/volume-store.js'
import type { ArrayAdmin } from '../../agent/clx/array-admin.js'
import { ClxService, type ClxEventDetails } from '../../agent/clx/clx-service.js'
import { provisionVmDisk, type VmStorageContext } from '../../agent/clx/vm-storage.js'
import { RealClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { RcPeerMessage } from '../../shared/protocol/storage-messages.js'
import { openTestArray } from './remote-copy-fixture.js'
import { ARRAYS, HOSTS } from './two-site-fixture.js'

const BS = 4096

interface ArraySide {
  name: string
  store: VolumeStore
  masking: LunMasking
  rc: RemoteCopyService
}

/** The link between the arrays; messages whose type is in `hold` wait until released. */
interface Lab {
  up: boolean
  hold: Set<string>
  held: (() => void)[]
  sides: Map<string, ArraySide>
  down: Set<string>
  events: { kind: string; details: ClxEventDetails }[]
  admin: ArrayAdmin
}

async function arraySide(lab: Lab, name: string, partner: string, dir: string): Promise<ArraySide> {
  const masking = await LunMasking.open(dir)
  const { store, rc } = await openTestArray(dir, partner, {
    send: async (to, m: RcPeerMessage, a) => {
      if (!lab.up) return false
      const deliver = () => setImmediate(() => lab.sides.get(to)?.rc.peerMessage(name, m, a))
      if (lab.hold.has(m.t)) lab.held.push(deliver)
      else deliver()
      return true
    },
    requestHashes: async (to, m) => (lab.up ? lab.sides.get(to)?.rc.hashRequest(name, m) : undefined),
  })
  const s = { name, store, masking, rc }
  lab.sides.set(name, s)
  return s
}

/** What the array process answers to an admin request (array-service.ts's operator handlers). */
async function answer(s: ArraySide, m: Message): Promise<Message> {
  const listing = (): Message => ({
    t: 'volume-listing',
    block_size_bytes: s.store.block_size_bytes,
    volumes: s.store
      .list()
      .map((v) => ({ volume: v.volume, size_bytes: v.size_bytes, presented_to: s.masking.presentations(v.volume).map((x) => x.host) })),
  })
  switch (m.t) {
    case 'rc-status-request':
      return { t: 'rc-status', groups: s.rc.status(m.group) }
    case 'rc-verb':
      return { t: 'rc-status', groups: [await s.rc.verb(m.group, m.verb, m.force === true)] }
    case 'rc-create':
      return { t: 'rc-status', groups: [await s.rc.create(m)] }
    case 'rc-admit':
      return { t: 'rc-status', groups: [await s.rc.admit(m.group, m.volume, m.remote_volume)] }
    case 'volume-create':
      await s.store.create(m.volume, m.size_bytes)
      return listing()
    case 'volume-list':
      return listing()
    case 'lun-present':
      s.store.get(m.volume)
      await s.masking.present(m.volume, m.host, m.initiators)
      return {
        t: 'lun-presentations',
        volume: m.volume,
        presentations: s.masking.presentations(m.volume).map((x) => ({ host: x.host, initiators: x.initiators })),
      }
    default:
      throw new HvlabError('HVLAB_E_PROTOCOL', `${m.t} is not a request this array answers`)
  }
}

async function startLab(t: { teardown(fn: () => unknown): void }): Promise<Lab> {
  const root = mkdtempSync(join(tmpdir(), 'hvlab-clx-'))
  const lab: Lab = {
    up: true,
    hold: new Set(),
    held: [],
    sides: new Map(),
    down: new Set(),
    events: [],
    admin: {
      async request(array, m) {
        if (lab.down.has(array)) throw new HvlabError('HVLAB_E_TIMEOUT', `${array} did not answer ${m.t} within 50 ms`)
        const s = lab.sides.get(array)
        if (!s) throw new HvlabError('HVLAB_E_CLOSED', `array ${array} is not connected to this host`)
        return answer(s, m)
      },
    },
  }
  await arraySide(lab, 'array-a', 'array-b', join(root, 'a'))
  await arraySide(lab, 'array-b', 'array-a', join(root, 'b'))
  t.teardown(async () => {
    for (const s of lab.sides.values()) {
      // Closing twice (the test may have closed one already, as a kill -9) is a no-op; a close that fails is a failure.
      await s.rc.close()
      await s.store.close()
    }
    rmSync(root, { recursive: true, force: true })
  })
  linkUp(lab)
  return lab
}

function linkUp(lab: Lab): void {
  lab.up = true
  lab.sides.get('array-a')!.rc.linkUp('array-b')
  lab.sides.get('array-b')!.rc.linkUp('array-a')
}
/** Cuts the link and waits until both arrays have noticed (their link-down input runs asynchronously). */
async function linkDown(lab: Lab): Promise<void> {
  lab.up = false
  lab.sides.get('array-a')!.rc.linkDown('array-b')
  lab.sides.get('array-b')!.rc.linkDown('array-a')
  await until('both arrays see the link down', () => !st(lab, 'array-a').link_up && !st(lab, 'array-b').link_up)
}
function release(lab: Lab): void {
  lab.hold.clear()
  for (const f of lab.held.splice(0)) f()
}

const clock = new RealClock()
const ctx = (lab: Lab): VmStorageContext => ({ arrays: ARRAYS, hosts: HOSTS, admin: lab.admin, clock, wait_ms: 60_000 })
const clx = (lab: Lab, host: string) =>
  new ClxService({
    host,
    arrays: ARRAYS,
    admin: lab.admin,
    clock,
    emit: (kind, details) => lab.events.push({ kind, details }),
    poll_ms: 10,
    writable_wait_ms: 60_000,
  })

async function until(what: string, ok: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}
const st = (lab: Lab, array: string, group = 'rc-web1') => lab.sides.get(array)!.rc.status(group)[0]!
const synced = (lab: Lab) => () => {
  const a = lab.sides.get('array-a')!.rc.status('rc-web1')[0]
  const b = lab.sides.get('array-b')!.rc.status('rc-web1')[0]
  const src = [a, b].find((g) => g?.role === 'primary' || g?.role === 'primary-rev')
  return !!src && src.bytes_behind === 0 && src.volumes.length > 0 && [a, b].every((g) => g?.volumes.every((v) => v.state === 'Synced'))
}

async function provisioned(lab: Lab) {
  const spec = await provisionVmDisk(ctx(lab), { vm: 'web1', preferredSite: 'site-a', size_bytes: 64 * BS })
  await until('rc-web1 synced', synced(lab))
  return spec
}

t.test(
  'provisionVmDisk: volume on the preferred site, sync group paired with the other array, presented everywhere; idempotent',
  async (t) => {
    const lab = await startLab(t)
    // A crash after the first step: only the secondary side of the group exists.
    await lab.admin.request('array-b', { t: 'rc-create', group: 'rc-web1', partner: 'array-a', role: 'secondary', mode: 'sync' }, 1000)
    const spec = await provisioned(lab)
    t.same(spec, {
      kind: 'replicated',
      group: 'rc-web1',
      volume: 'web1-disk0',
      size_bytes: 64 * BS,
      mode: 'sync',
      arrays: { primary: 'array-a', secondary: 'array-b' },
      hosts: ['host-a1', 'host-a2', 'host-b1', 'host-b2'],
    })
    t.match(st(lab, 'array-a'), {
      role: 'primary',
      mode: 'sync',
      started: true,
      volumes: [{ volume: 'web1-disk0', remote_volume: 'web1-disk0' }],
    })
    t.match(st(lab, 'array-b'), { role: 'secondary' })
    for (const array of ['array-a', 'array-b']) {
      const s = lab.sides.get(array)!
      t.equal(s.store.get('web1-disk0').size_bytes, 64 * BS, `${array} holds the volume`)
      t.same(
        s.masking
          .presentations('web1-disk0')
          .map((p) => p.host)
          .sort(),
        ['host-a1', 'host-a2', 'host-b1', 'host-b2'],
        `${array} presents it to both sites`,
      )
    }
    // Again: nothing new, same answer.
    t.same(await provisionVmDisk(ctx(lab), { vm: 'web1', preferredSite: 'site-a', size_bytes: 64 * BS }), spec)
    t.equal(lab.sides.get('array-a')!.store.list().length, 1)
    // A clash of sizes is refused clearly.
    await t.rejects(provisionVmDisk(ctx(lab), { vm: 'web1', preferredSite: 'site-a', size_bytes: 128 * BS }), {
      code: 'HVLAB_E_STATE',
      message: /already exists on array-a with/,
    })
  },
)

t.test('prepareForStart: none within the site; planned switchover across sites and back (restore), with events', async (t) => {
  const lab = await startLab(t)
  await provisioned(lab)
  t.match(await clx(lab, 'host-a2').prepareForStart('web1', 'rc-web1', 'site-a'), { action: 'none', array: 'array-a' })
  t.equal(lab.events.length, 0, 'a move within the site does no storage failover')
  t.match(await clx(lab, 'host-b1').prepareForStart('web1', 'rc-web1', 'site-b'), { action: 'switchover', array: 'array-b', forced: false })
  t.equal(st(lab, 'array-b').role, 'primary-rev')
  t.match(lab.events.at(-1), {
    kind: 'clx.switchover',
    details: { vm: 'web1', from_array: 'array-a', to_array: 'array-b', verb: 'switchover' },
  })
  await until('synced after switchover', synced(lab))
  t.match(await clx(lab, 'host-a1').prepareForStart('web1', 'rc-web1', 'site-a'), { action: 'switchover', array: 'array-a' })
  t.equal(st(lab, 'array-a').role, 'primary')
  t.match(lab.events.at(-1), { kind: 'clx.switchover', details: { verb: 'restore', from_array: 'array-b', to_array: 'array-a' } })
})

t.test(
  'a syncing group: start refused (force too), live migration cancelled; once Synced the migration check passes and the blackout switchover works',
  async (t) => {
    const lab = await startLab(t)
    await provisioned(lab)
    await linkDown(lab)
    const a = lab.sides.get('array-a')!
    for (let b = 0; b < 16; b++) await a.rc.hostWrite('rc-web1', 'web1-disk0', b, new Uint8Array(BS).fill(b + 1))
    lab.hold.add('rc-blocks-ack')
    linkUp(lab)
    await until('resync running', () => st(lab, 'array-a').volumes.some((v) => v.state === 'Syncing'))
    const svc = clx(lab, 'host-b1')
    for (const force of [false, true]) {
      await t.rejects(svc.prepareForStart('web1', 'rc-web1', 'site-b', { force }), {
        code: 'HVLAB_E_REFUSED',
        message: /^cannot start vm web1 on host-b1: remote copy group rc-web1 is syncing \(\d+%, .* behind\); wait/,
      })
    }
    t.match(lab.events.at(-1), { kind: 'clx.refused', details: { reason: 'syncing', vm: 'web1', forceable: false } })
    await t.rejects(svc.checkForLiveMigration('web1', 'rc-web1', 'site-b'), {
      code: 'HVLAB_E_REFUSED',
      message:
        /^cannot live-migrate vm web1 to host-b1: remote copy group rc-web1 is syncing \(\d+%, .* behind\); wait until it is Synced$/,
    })
    t.equal(st(lab, 'array-a').role, 'primary', 'nothing changed on the arrays')
    t.equal(st(lab, 'array-b').role, 'secondary')
    release(lab)
    await until('synced again', synced(lab))
    t.match(await svc.checkForLiveMigration('web1', 'rc-web1', 'site-b'), { action: 'switchover' })
    t.match(await svc.switchoverInBlackout('web1', 'rc-web1', 'site-b'), { action: 'switchover', array: 'array-b' })
    t.equal(st(lab, 'array-b').role, 'primary-rev')
    // The data the VM wrote in site-a is in site-b (zero loss).
    const got = await lab.sides.get('array-b')!.store.read('web1-disk0', 15, 1)
    t.equal(got[0], 16)
  },
)

t.test('the primary site array is lost: the VM comes up in site-b after a failover; a live migration is refused instead', async (t) => {
  const lab = await startLab(t)
  await provisioned(lab)
  await linkDown(lab)
  lab.down.add('array-a')
  const svc = clx(lab, 'host-b2')
  await t.rejects(svc.checkForLiveMigration('web1', 'rc-web1', 'site-b'), {
    code: 'HVLAB_E_REFUSED',
    message: /^cannot move vm web1 to host-b2 by live migration: it needs both arrays healthy/,
  })
  t.equal(st(lab, 'array-b').role, 'secondary', 'the migration check changed nothing')
  t.match(await svc.prepareForStart('web1', 'rc-web1', 'site-b'), { action: 'failover', array: 'array-b', forced: false })
  t.equal(st(lab, 'array-b').role, 'primary-rev')
  t.match(lab.events.at(-1), { kind: 'clx.failover', details: { vm: 'web1', array: 'array-b', forced: false } })
  // Moving within site-b now: nothing to do.
  t.match(await clx(lab, 'host-b1').prepareForStart('web1', 'rc-web1', 'site-b'), { action: 'none' })
  // The local array itself unreachable: refused.
  lab.down.add('array-b')
  await t.rejects(clx(lab, 'host-b1').prepareForStart('web1', 'rc-web1', 'site-b'), {
    code: 'HVLAB_E_REFUSED',
    message: /array array-b in its site \(site-b\) is unreachable/,
  })
})

t.test('arrays split with the primary still reachable: refused; forced → failover onto the local copy', async (t) => {
  const lab = await startLab(t)
  await provisioned(lab)
  await linkDown(lab)
  const svc = clx(lab, 'host-b1')
  await t.rejects(svc.prepareForStart('web1', 'rc-web1', 'site-b'), {
    code: 'HVLAB_E_REFUSED',
    message: /cannot reach each other.*or force/,
  })
  t.match(await svc.prepareForStart('web1', 'rc-web1', 'site-b', { force: true }), { action: 'failover', array: 'array-b', forced: true })
  t.equal(st(lab, 'array-b').role, 'primary-rev')
})
