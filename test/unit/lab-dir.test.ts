/**
 * The data dir is private: the controller creates it (and logs/, data/) mode 0700, and
 * both the controller and the CLI refuse one that group or others may write, or that
 * another user owns (HVLAB_E_UNSAFE_DIR, saying what to do). control.json is replaced
 * atomically.
 */
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { LabController } from '../../scripts/controller/lab-controller.js'
import { readRunningControl } from '../../scripts/controller/control-file.js'
import { runningLab } from '../../scripts/cli/control-client.js'
import { checkLabDir, prepareLabDir } from '../../shared/lab-dir.js'
import { labLayout } from '../../shared/lab-layout.js'
import { silentLogger } from '../../shared/log.js'
import { DEFAULT_TOPOLOGY_FILE } from '../../shared/topology.js'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

function scratch(t: TapTest): string {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-lab-dir-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const modeOf = (path: string): number => statSync(path).mode & 0o777

async function create(t: TapTest, dir: string): Promise<LabController> {
  const controller = await LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() })
  t.teardown(() => controller.down())
  return controller
}

t.test('a new data dir is created 0700, with logs/ and data/', async (t) => {
  const dir = join(scratch(t), 'nested', 'lab')
  await create(t, dir)
  const layout = labLayout(dir)
  t.equal(modeOf(layout.root), 0o700, 'the data dir')
  t.equal(modeOf(layout.logs), 0o700, 'logs/')
  t.equal(modeOf(layout.data), 0o700, 'data/')
})

for (const mode of [0o777, 0o770, 0o722]) {
  t.test(`a data dir of mode 0${mode.toString(8)} is refused, by the controller and by the CLI`, async (t) => {
    const dir = join(scratch(t), 'lab')
    mkdirSync(dir)
    chmodSync(dir, mode)
    await t.rejects(LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() }), {
      name: 'HvlabError',
      code: 'HVLAB_E_UNSAFE_DIR',
      message: new RegExp(`writable by .*chmod 700 ${dir}.*another --dir`),
    })
    t.same(readdirSync(dir), [], 'nothing was written into it')
    t.throws(() => runningLab(dir), { code: 'HVLAB_E_UNSAFE_DIR' }, 'the CLI does not read its control file or secret either')
    chmodSync(dir, 0o700)
    const controller = await create(t, dir)
    t.equal(modeOf(dir), 0o700, 'accepted once it is 0700')
    t.ok(controller.secret)
  })
}

t.test('an existing 0755 data dir is accepted as it is; its older logs/ and data/ are tightened to 0700', async (t) => {
  const dir = join(scratch(t), 'lab')
  const layout = labLayout(dir)
  for (const d of [layout.root, layout.logs, layout.data]) mkdirSync(d, { recursive: true, mode: 0o755 })
  prepareLabDir(layout)
  t.equal(modeOf(layout.root), 0o755, 'the data dir the user made is left alone: only others writing it matters')
  t.equal(modeOf(layout.logs), 0o700)
  t.equal(modeOf(layout.data), 0o700)
})

t.test(
  'a data dir owned by another user is refused',
  { skip: process.getuid?.() === 0 ? false : 'changing an owner needs root' },
  async (t) => {
    const dir = join(scratch(t), 'lab')
    mkdirSync(dir, { mode: 0o700 })
    chownSync(dir, 65534, 65534)
    t.throws(() => checkLabDir(dir), { code: 'HVLAB_E_UNSAFE_DIR', message: /belongs to uid 65534, not to you.*--dir of your own/ })
    await t.rejects(LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() }), { code: 'HVLAB_E_UNSAFE_DIR' })
    t.throws(() => runningLab(dir), { code: 'HVLAB_E_UNSAFE_DIR' })
  },
)

t.test('a data dir that does not exist yet passes the check; a file in its place is a usage error', (t) => {
  const base = scratch(t)
  t.doesNotThrow(() => checkLabDir(join(base, 'not-yet')))
  t.throws(() => runningLab(join(base, 'not-yet')), { code: 'HVLAB_E_LAB' }, 'the CLI then says no lab is running')
  const file = join(base, 'file')
  writeFileSync(file, '')
  t.throws(() => checkLabDir(file), { code: 'HVLAB_E_USAGE', message: /is not a directory/ })
  t.end()
})

t.test('control.json is replaced atomically: no temp file is left, and it reads back whole', async (t) => {
  const dir = join(scratch(t), 'lab')
  const controller = await create(t, dir)
  const layout = labLayout(dir)
  await controller.writeControlFile(4242)
  await controller.writeControlFile(4343)
  t.equal(modeOf(layout.control), 0o600, 'mode 0600')
  t.same(
    readdirSync(layout.root).filter((f) => f.includes('.tmp')),
    [],
    'no temp file left behind',
  )
  t.match(readRunningControl(layout), { pid: process.pid, httpPort: 4343, peerPort: controller.peerPort, topology: 'two-site' })
})
