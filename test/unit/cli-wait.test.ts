/**
 * The commands that wait, run as the binary runs them (runHvlab) against a fake lab
 * controller in this process playing one host: exit 0 when it happened (with where), 0
 * for a no-op that says so (and sends nothing), 1 when it failed (with the role's reason)
 * or the wait timed out (with the state and how to watch it), and --no-wait returning at once;
 * remote copy verbs against two fake arrays whose groups change one step per poll.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'

interface FakeRole {
  name: string
  state: string
  owner: string | null
  reason: string
}

/** The fake cluster: one VM role that goes where `after` says once a command arrives, and what it was sent. */
interface FakeLab {
  role: FakeRole
  /** What the role becomes, one step per role-list poll after a command (the last step stays). */
  after: Partial<FakeRole>[]
  nodeState: string
  commands: unknown[]
  /** Each array's remote copy groups, as rc-status answers them. */
  groups: Record<string, unknown[]>
  /** The groups once an rc-verb arrives (its reply shows them), then one step per status poll of array-a (the last step stays). */
  rcAfter: Record<string, unknown[]>[]
}

function fakeLab(role: Partial<FakeRole>): FakeLab {
  return {
    role: { name: 'web1', state: 'stopped', owner: null, reason: '', ...role },
    after: [],
    nodeState: 'Up',
    commands: [],
    groups: { 'array-a': [], 'array-b': [] },
    rcAfter: [],
  }
}

async function body(req: IncomingMessage): Promise<{ message: { t: string; [k: string]: unknown } }> {
  let s = ''
  for await (const chunk of req) s += chunk
  return JSON.parse(s)
}

const send = (res: ServerResponse, status: number, v: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(v))
}

function answer(lab: FakeLab, target: string, m: { t: string; [k: string]: unknown }): [number, unknown] {
  if (m.t === 'role-list-request') {
    const next = lab.after.length > 1 ? lab.after.shift() : lab.after[0]
    if (lab.commands.length > 0 && next) Object.assign(lab.role, next)
    return [200, { message: { t: 'role-list-reply', coordinator: 'host-a1', source: 'coordinator', roles: [lab.role] } }]
  }
  if (m.t === 'role-command-request') {
    lab.commands.push(m['command'])
    return [200, { message: { t: 'ok' } }]
  }
  if (m.t === 'cluster-status-request')
    return [200, { message: { t: 'cluster-status-reply', status: { nodes: [{ name: 'host-a1', state: lab.nodeState }] } } }]
  if (m.t === 'rc-verb') {
    lab.commands.push({ verb: m['verb'], group: m['group'] })
    Object.assign(lab.groups, lab.rcAfter.length > 1 ? lab.rcAfter.shift() : lab.rcAfter[0])
    return [200, { message: { t: 'rc-status', groups: lab.groups[target] } }]
  }
  if (m.t === 'rc-status-request') {
    if (target === 'array-a' && lab.commands.length > 0)
      Object.assign(lab.groups, lab.rcAfter.length > 1 ? lab.rcAfter.shift() : lab.rcAfter[0])
    const groups = (lab.groups[target] ?? []).filter((g) => (g as { group: string }).group === m['group'])
    if (groups.length === 0) return [404, { error: { code: 'HVLAB_E_NOT_FOUND', message: `no remote copy group ${String(m['group'])}` } }]
    return [200, { message: { t: 'rc-status', groups } }]
  }
  return [400, { error: { code: 'HVLAB_E_UNSUPPORTED', message: `fake lab: ${m.t}` } }]
}

const STATUS = {
  processes: [
    { name: 'host-a1', role: 'host', state: 'up' },
    { name: 'array-a', role: 'array', state: 'up' },
    { name: 'array-b', role: 'array', state: 'up' },
  ],
  cluster: { hosts: { 'host-a1': { holds_lease: true } } },
}

/** A lab dir whose control file points at a server in this process that answers for `lab`. */
async function labDir(t: { teardown(fn: () => unknown): void }, lab: FakeLab): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-cli-wait-'))
  const server = createServer((req, res) => {
    if (req.url === '/v1/status') return send(res, 200, STATUS)
    const m = /^\/v1\/processes\/([^/]+)\/request$/.exec(req.url ?? '')
    if (!m) return send(res, 404, { error: { code: 'HVLAB_E_NOT_FOUND', message: req.url } })
    void body(req).then((b) => send(res, ...answer(lab, m[1]!, b.message)))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    rmSync(dir, { recursive: true, force: true })
  })
  writeFileSync(join(dir, 'secret'), 'test-secret\n')
  writeFileSync(
    join(dir, 'control.json'),
    JSON.stringify({ pid: process.pid, httpPort: (server.address() as AddressInfo).port, peerPort: 1, topology: 'x', started_ms: 0 }),
  )
  return dir
}

async function hvlab(dir: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), isTTY: false }
  const code = await runHvlab([...args, '--dir', dir], io)
  return { code, stdout: out.join(''), stderr: err.join('') }
}

t.test('vm start waits until the role runs and prints its host (exit 0)', async (t) => {
  const lab = fakeLab({ state: 'stopped' })
  lab.after = [{ state: 'pending' }, { state: 'starting', owner: 'host-a1' }, { state: 'running', owner: 'host-a1' }]
  const r = await hvlab(await labDir(t, lab), 'vm', 'start', 'web1')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'vm web1 is running on host-a1\n')
  t.same(lab.commands, [{ op: 'start', name: 'web1' }])
})

t.test('vm start of a running VM says so and succeeds without sending anything; --force-storage did nothing', async (t) => {
  const lab = fakeLab({ state: 'running', owner: 'host-a2' })
  const dir = await labDir(t, lab)
  const r = await hvlab(dir, 'vm', 'start', 'web1')
  t.equal(r.code, 0)
  t.equal(r.stdout, 'vm web1 is already running on host-a2\n')
  const f = await hvlab(dir, 'vm', 'start', 'web1', '--force-storage')
  t.equal(f.code, 0)
  t.match(f.stdout, /^vm web1 is already running on host-a2; --force-storage did nothing/)
  t.same(lab.commands, [], 'no command was sent')
})

t.test('vm start that fails exits 1 with the role’s reason', async (t) => {
  const lab = fakeLab({ state: 'stopped' })
  lab.after = [
    { state: 'starting', owner: 'host-a1' },
    { state: 'failed', owner: null, reason: 'clx refused: group rc-web1 is syncing' },
  ]
  const r = await hvlab(await labDir(t, lab), 'vm', 'start', 'web1')
  t.equal(r.code, 1)
  t.match(r.stderr, /^hvlab: vm web1 failed to start: clx refused: group rc-web1 is syncing/)
  t.equal(r.stdout, '')
})

t.test('a start that does not finish in --timeout-s exits 1 with its state and how to watch it', async (t) => {
  const lab = fakeLab({ state: 'stopped' })
  lab.after = [{ state: 'pending', reason: 'no node has 4096 MiB free' }]
  const r = await hvlab(await labDir(t, lab), 'vm', 'start', 'web1', '--timeout-s', '1')
  t.equal(r.code, 1)
  t.match(r.stderr, /gave up waiting for vm web1 to run after 1 s: pending \(no node has 4096 MiB free\); .*`hvlab vm list` shows it/)
})

t.test('--no-wait returns once the command is accepted', async (t) => {
  const lab = fakeLab({ state: 'stopped' })
  lab.after = [{ state: 'pending' }]
  const r = await hvlab(await labDir(t, lab), 'vm', 'start', 'web1', '--no-wait')
  t.equal(r.code, 0)
  t.match(r.stdout, /^starting vm web1; /)
  const bad = await hvlab(await labDir(t, lab), 'vm', 'start', 'web1', '--timeout-s', '0')
  t.not(bad.code, 0, 'a timeout below 1 s is refused')
})

t.test('vm stop waits until stopped; a stopped VM is a no-op that says so', async (t) => {
  const lab = fakeLab({ state: 'running', owner: 'host-a1' })
  lab.after = [{ state: 'stopping' }, { state: 'stopped', owner: null }]
  const r = await hvlab(await labDir(t, lab), 'vm', 'stop', 'web1')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'vm web1 is stopped (it ran on host-a1)\n')
  const idle = fakeLab({ state: 'stopped' })
  const n = await hvlab(await labDir(t, idle), 'vm', 'stop', 'web1')
  t.equal(n.code, 0)
  t.equal(n.stdout, 'vm web1 is already stopped\n')
  t.same(idle.commands, [])
})

t.test('node resume of a node that is not paused says so and sends nothing', async (t) => {
  const lab = fakeLab({})
  const dir = await labDir(t, lab)
  const r = await hvlab(dir, 'node', 'resume', 'host-a1')
  t.equal(r.code, 0)
  t.equal(r.stdout, 'host-a1 is not paused (Up); nothing to resume\n')
  t.same(lab.commands, [])
  lab.nodeState = 'Paused'
  t.equal((await hvlab(dir, 'node', 'resume', 'host-a1')).code, 0)
  t.same(lab.commands, [{ op: 'resume', node: 'host-a1', failback: false }])
})

t.test('rcopy status of a group no array holds exits 1 and says how to list them', async (t) => {
  const r = await hvlab(await labDir(t, fakeLab({})), 'rcopy', 'status', 'rc-nope')
  t.equal(r.code, 1)
  t.equal(r.stderr, 'hvlab: no remote copy group rc-nope; `hvlab rcopy status` lists them\n')
  const all = await hvlab(await labDir(t, fakeLab({})), 'rcopy', 'status')
  t.equal(all.code, 0, 'without a group it lists none')
})

/** One array's side of group rc1 as rc-status shows it. */
const rcSide = (over: Record<string, unknown>) => ({
  group: 'rc1',
  partner: 'array-b',
  role: 'primary',
  mode: 'periodic',
  period_ms: 60_000,
  started: true,
  link_up: true,
  partner_role: 'secondary',
  last_sync_ms: 1000,
  bytes_behind: 0,
  bytes_resynced_total: 0,
  generation: 0,
  volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'Synced', bytes_behind: 0 }],
  ...over,
})
const SYNCING = { bytes_behind: 4096, volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'Syncing', bytes_behind: 4096 }] }

/** A lab whose group rc1 is array-a primary → array-b secondary, with `a` over array-a's side. */
function rcLab(a: Record<string, unknown>): FakeLab {
  const lab = fakeLab({})
  lab.groups = { 'array-a': [rcSide(a)], 'array-b': [rcSide({ partner: 'array-a', role: 'secondary', partner_role: 'primary' })] }
  return lab
}

t.test('rcopy sync waits until a cycle begun after the request has completed (exit 0)', async (t) => {
  const lab = rcLab({ bytes_behind: 4096 })
  lab.rcAfter = [{ 'array-a': [rcSide(SYNCING)] }, { 'array-a': [rcSide(SYNCING)] }, { 'array-a': [rcSide({ last_sync_ms: 7000 })] }]
  const r = await hvlab(await labDir(t, lab), 'rcopy', 'sync', 'rc1')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, "group rc1 synced: array-b holds array-a's volumes as of the new sync point\n")
  t.same(lab.commands, [{ verb: 'sync', group: 'rc1' }])
})

t.test('rcopy sync of a group with nothing to send says so (exit 0)', async (t) => {
  const lab = rcLab({})
  lab.rcAfter = [{ 'array-a': [rcSide({})] }]
  const r = await hvlab(await labDir(t, lab), 'rcopy', 'sync', 'rc1')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'group rc1 is already Synced on array-a: nothing to send to array-b\n')
})

t.test('rcopy sync that cannot complete or does not finish exits 1 with the state', async (t) => {
  const stopped = rcLab({ bytes_behind: 4096 })
  stopped.rcAfter = [{ 'array-a': [rcSide(SYNCING)] }, { 'array-a': [rcSide({ started: false, bytes_behind: 4096 })] }]
  const s = await hvlab(await labDir(t, stopped), 'rcopy', 'sync', 'rc1')
  t.equal(s.code, 1)
  t.match(s.stderr, /^hvlab: the sync of group rc1 cannot complete: array-a is primary, stopped; `hvlab rcopy status rc1` shows it/)
  const slow = rcLab({ bytes_behind: 4096 })
  slow.rcAfter = [{ 'array-a': [rcSide(SYNCING)] }]
  const r = await hvlab(await labDir(t, slow), 'rcopy', 'sync', 'rc1', '--timeout-s', '1')
  t.equal(r.code, 1)
  t.match(
    r.stderr,
    /gave up waiting for sync of group rc1 after 1 s: array-a primary, started, link up, volumes vol1 Syncing; array-b secondary/,
  )
  t.equal(r.stdout, '')
})

t.test('rcopy reverse waits until both arrays have swapped (exit 0); --no-wait returns at once', async (t) => {
  const lab = rcLab({})
  const b = (over: Record<string, unknown>) => [rcSide({ partner: 'array-a', role: 'secondary', partner_role: 'primary', ...over })]
  lab.rcAfter = [
    { 'array-a': [rcSide({ role: 'primary-rev' })] },
    { 'array-b': b({ role: 'secondary-rev' }) },
    { 'array-a': [rcSide({ role: 'primary-rev', partner_role: 'secondary-rev' })] },
  ]
  const r = await hvlab(await labDir(t, lab), 'rcopy', 'reverse', 'rc1')
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout, 'group rc1 reversed: array-a is Primary-Rev, array-b Secondary-Rev\n')
  t.same(lab.commands, [{ verb: 'reverse', group: 'rc1' }])
  const quick = rcLab({})
  quick.rcAfter = [{ 'array-a': [rcSide({ role: 'primary-rev' })] }]
  const n = await hvlab(await labDir(t, quick), 'rcopy', 'reverse', 'rc1', '--no-wait')
  t.equal(n.code, 0, n.stderr)
  t.match(n.stdout, /^reverse of rc1 accepted on array-a: now primary-rev, started; /)
})

t.test('rcopy reverse the partner never confirms exits 1 after --timeout-s with both sides', async (t) => {
  const lab = rcLab({})
  lab.rcAfter = [{ 'array-a': [rcSide({ role: 'primary-rev' })] }]
  const r = await hvlab(await labDir(t, lab), 'rcopy', 'reverse', 'rc1', '--timeout-s', '1')
  t.equal(r.code, 1)
  t.match(r.stderr, /gave up waiting for reverse of group rc1 after 1 s: array-a primary-rev, .*; array-b secondary, /)
})
