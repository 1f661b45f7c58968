/**
 * DESIGN principle 8, "errors are for people; decisions are for data", checked over the
 * source tree: code never decides on a sentence — a role's `reason`, an error's `message`,
 * a described error — by inspecting its text (startsWith, includes, a regex …) or by
 * comparing it with a sentence. It switches on typed fields, event kinds and error codes
 * (`code`, the finer `detail`: shared/errors.ts) instead. Each offending line is printed
 * as `file:line: code`.
 *
 * Allowed: truncating a sentence for display (`reason.slice(0, 512)`); comparing a typed
 * field that happens to be called `reason` with one of its values (`'syncing'`,
 * `'paused-too-long'`: no spaces, a member of a closed union); and comparing two sentences
 * from the same source to avoid telling people the same thing twice (`e.drain_stuck ===
 * s.reason`): that decides only what people are told.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { NodeView } from '../../agent/cluster/placement.js'
import { RoleController, type RoleEffect, type RoleInput } from '../../agent/cluster/role-controller.js'
import { decodeRoles, encodeRole, roleKey } from '../../agent/cluster/role-record.js'
import { createVmRole, type VmRole } from '../../agent/cluster/vm-role.js'
import { HvlabError, asErrorCode, describeError } from '../../shared/errors.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
/** The non-test source. */
const SOURCE = ['agent', 'array-emulator', 'witness', 'shared', 'scripts'] as const

/** Names that hold sentences for people. */
const SENTENCE = String.raw`(?:reason|message|msg|stderr|stdout)`
/** Reading text: a search, a prefix or suffix test, a match, a split. */
const TEXT_OP = String.raw`(?:startsWith|endsWith|includes|indexOf|lastIndexOf|search|match|matchAll|split)`
/** A quoted string literal that is a sentence (it has a space). */
const QUOTED_SENTENCE = String.raw`(?:'[^'\n]*\s[^'\n]*'|"[^"\n]*\s[^"\n]*")`

const PATTERNS: ReadonlyArray<{ what: string; re: RegExp }> = [
  // role.reason.startsWith('stopped by operator'), e.message.includes('died while starting')
  { what: 'reads the text of a sentence', re: new RegExp(String.raw`\b${SENTENCE}\s*\??\.\s*${TEXT_OP}\s*\(`) },
  // describeError(e).includes(…), String(e).startsWith(…), e.toString().match(…)
  {
    what: 'reads the text of a described error',
    re: new RegExp(String.raw`(?:\bdescribeError\([^()]*\)|\bString\([^()]*\)|\.toString\(\))\s*\.\s*${TEXT_OP}\s*\(`),
  },
  // /coordinator with quorum/.test(e.message), /^(.*): /.exec(err.message), re.test(describeError(e))
  {
    what: 'runs a regex over a sentence',
    re: new RegExp(String.raw`\.(?:test|exec)\(\s*(?:describeError\(|String\(|[\w.?!]*\b${SENTENCE}\b)`),
  },
  // e.message === 'no such vm', reason !== `…`
  { what: 'compares a sentence with a sentence', re: new RegExp(String.raw`\b${SENTENCE}\s*[!=]==?\s*(?:${QUOTED_SENTENCE}|\`)`) },
  { what: 'compares a sentence with a sentence', re: new RegExp(String.raw`${QUOTED_SENTENCE}\s*[!=]==?\s*[\w.?]*\b${SENTENCE}\b`) },
]

/** `file:line: code` for each line of `source` that decides on text. */
export function textDecisions(file: string, source: string): string[] {
  const out: string[] = []
  source.split('\n').forEach((line, i) => {
    const code = line.trim()
    if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return // a comment
    const hit = PATTERNS.find((p) => p.re.test(code))
    if (hit) out.push(`${file}:${i + 1}: ${code} (${hit.what})`)
  })
  return out
}

function sourceFiles(folder: string): string[] {
  const entries = readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
  return entries.filter((f) => f.endsWith('.ts') && !f.split(sep).includes('node_modules')).map((f) => join(folder, f).split(sep).join('/'))
}

t.test('the scanner finds decisions on text, and leaves logging and typed fields alone', async (t) => {
  // The decision sites of issue 10 as they were, and the forms around them.
  const decisions = [
    "role.state !== 'stopping' ? null : role.reason.startsWith('stopped by operator') ? { kind: 'stay_stopped' } : place",
    'if (e.needs_sync && e.role.reason.startsWith(`${MIGRATING_REASON} ${node} `)) {',
    'else if (e.role.reason.startsWith(MIGRATING_REASON)) {',
    "if (reason.startsWith('failing over')) this.emit('role.failed-over', {})",
    'if (e.role.reason.endsWith(waiting)) return',
    "const transient = e instanceof HvlabError && (e.code === 'HVLAB_E_STATE' && /coordinator with quorum/.test(e.message))",
    "return e instanceof HvlabError && e.code === 'HVLAB_E_REFUSED' && /reserved at epoch \\d+/.test(e.message)",
    "if (e instanceof HvlabError && e.message.includes('died while starting')) throw e",
    'if (!(e instanceof HvlabError) || !e.message.startsWith(`${host}: `)) return e',
    'const m = /^[a-z0-9][a-z0-9._-]{0,62}: (.*)$/s.exec(e.message)',
    'if (/not presented/.test(describeError(e))) retry()',
    "if (describeError(e).includes('timed out')) retry()",
    'if (String(err).match(/ECONNRESET/)) retry()',
    "if (err?.message === 'no such vm') return",
    'if (r.reason !== `stopped on ${node}`) persist()',
    "if ('stopped by operator' === role.reason) stay()",
    'const parts = reply.message.split(": ")',
  ]
  for (const line of decisions) t.equal(textDecisions('x.ts', line).length, 1, line)
  const fine = [
    "log.warn({ err: describeError(e), role: f.role }, 'could not report a failed vm')",
    "const opReply = { t: 'vm-op-reply', reason: r.reason.slice(0, 512) }",
    "if (d.action === 'refuse' && d.reason === 'syncing') {",
    "if (r.reply.t === 'cluster-refuse' && r.reply.reason === 'decided') this.send(m.from, this.commitMessage())",
    "if (r.reason === 'paused-too-long') return this.unreachable(p, 'stayed paused')",
    "const transient = HvlabError.has(e, 'HVLAB_E_NO_QUORUM')",
    'if (e.role.migration?.to === node) adopt()',
    "if (message.t === 'vm-location') learn()",
    'if (REFUSAL_REASONS.includes(reason)) count()',
    'if (e === undefined || e.drain_stuck === s.reason) continue',
    'if (r.pid !== message.pid) this.log.warn({ pid: message.pid }, `registered pid differs`)',
    "// role.reason.startsWith('stopped by operator') was how it was done",
    " * e.message.includes('x') in a doc comment",
    "throw new HvlabError('HVLAB_E_STATE', `${name} is not the coordinator`)",
  ]
  for (const line of fine) t.same(textDecisions('x.ts', line), [], line)
})

t.test('no decision in agent/, array-emulator/, witness/, shared/ or scripts/ reads a sentence', async (t) => {
  const files = SOURCE.flatMap(sourceFiles)
  t.ok(files.length > 100, `scanned ${files.length} source files`)
  const hits = files.flatMap((file) => textDecisions(file, readFileSync(join(ROOT, file), 'utf8')))
  t.same(hits, [], hits.length === 0 ? 'none' : `decide on typed fields, event kinds or error codes instead:\n${hits.join('\n')}`)
})

// ── the data the decisions are made on ──────────────────────────────────────────────────

const NODES: NodeView[] = ['host-a1', 'host-a2', 'host-b1'].map((name) => ({ name, status: 'up', memory_mib: 8192 }))
const persisted = (fx: RoleEffect[]): VmRole[] => fx.flatMap((f) => (f.kind === 'write-role-record' ? [f.role] : []))
const of = <T extends RoleEffect['kind']>(fx: RoleEffect[], type: T) =>
  fx.filter((f): f is Extract<RoleEffect, { kind: T }> => f.kind === type)

/** A live controller with web1 running on host-a1. */
function running(live_migration = false) {
  const c = new RoleController({ live_migration })
  let now = 0
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  step({ kind: 'membership', epoch: 1, nodes: NODES })
  step({ kind: 'command', command: { op: 'create', spec: { name: 'web1', memory_mib: 64, preferred_owners: ['host-a1'] } } })
  const s = of(step({ kind: 'command', command: { op: 'start', name: 'web1' } }), 'start-vm')[0]!
  step({ kind: 'vm-started', role: 'web1', node: s.node, op: s.op })
  return { c, step }
}

/** A controller restored at epoch 7 from `roles`, every member's inventory in. */
function restore(roles: VmRole[], inventories: Record<string, { role: string; op: number }[]> = {}) {
  const c = new RoleController()
  let now = 0
  c.restore(roles, [], 7)
  const step = (input: RoleInput) => c.step(input, (now += 1000))
  const fx = [...step({ kind: 'membership', epoch: 7, nodes: NODES })]
  for (const n of NODES)
    fx.push(...step({ kind: 'inventory', node: n.name, vms: inventories[n.name] ?? [], ops_at_request: c.opSnapshot() }))
  fx.push(...step({ kind: 'sync-done' }))
  return { c, fx }
}

const record = (over: Partial<VmRole>): VmRole => ({ ...createVmRole({ name: 'web1', preferred_owners: ['host-a1'] }), ...over })

t.test('a role record says why it is stopping and where it migrates; both go once that is over', async (t) => {
  const { c, step } = running()
  const stop = step({ kind: 'command', command: { op: 'stop', name: 'web1' } })
  t.match(persisted(stop).at(-1), { state: 'stopping', stop_cause: 'operator' })
  step({ kind: 'vm-stopped', role: 'web1', node: 'host-a1', op: of(stop, 'stop-vm')[0]!.op })
  t.equal(c.role('web1')?.state, 'stopped')
  t.notOk('stop_cause' in c.role('web1')!, 'no stop cause once stopped')

  const moving = running()
  const move = moving.step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-a2' } })
  t.match(persisted(move).at(-1), { state: 'stopping', stop_cause: 'move' })

  const live = running(true)
  const m = of(live.step({ kind: 'command', command: { op: 'move', name: 'web1', to: 'host-a2' } }), 'migrate-vm')[0]!
  t.same(live.c.role('web1')?.migration, { to: 'host-a2', op: m.op })
  t.same(JSON.parse(encodeRole(live.c.role('web1')!)).migration, { to: 'host-a2', op: m.op }, 'persisted with the record')
  const done = live.step({ kind: 'vm-migrated', role: 'web1', node: 'host-a1', to: 'host-a2', op: m.op, ok: true, reason: 'done' })
  t.match(persisted(done).at(-1), { owner: 'host-a2', state: 'running' })
  t.notOk('migration' in live.c.role('web1')!, 'no migration once it is over')
})

t.test('a new coordinator decides on the stop cause and the migration, whatever the reason says', async (t) => {
  // The reason says "stopped by operator", the cause says it was a move: placed again.
  const moved = restore([
    record({ state: 'stopping', owner: 'host-a1', last_owner: 'host-a1', reason: 'stopped by operator', stop_cause: 'move' }),
  ])
  t.same(
    of(moved.fx, 'start-vm').map((s) => s.role),
    ['web1'],
    'a move in flight is placed again',
  )
  // A reworded reason, an operator's stop: it stays stopped.
  const halted = restore([
    record({
      state: 'stopping',
      owner: 'host-a1',
      last_owner: 'host-a1',
      reason: 'halted at the request of the operator',
      stop_cause: 'operator',
    }),
  ])
  t.equal(halted.c.role('web1')?.state, 'stopped')
  t.same(of(halted.fx, 'start-vm'), [])
  // A migration whose reason says nothing of it: found on the target, it is adopted there.
  const arrived = restore(
    [record({ state: 'running', owner: 'host-a1', last_owner: 'host-a1', reason: 'busy', migration: { to: 'host-a2', op: 7_000_005 } })],
    { 'host-a2': [{ role: 'web1', op: 7_000_005 }] },
  )
  t.match(arrived.c.role('web1'), { state: 'running', owner: 'host-a2', reason: 'found running on host-a2' })
  t.notOk('migration' in arrived.c.role('web1')!)
  t.same(of(arrived.fx, 'stop-vm'), [], 'nothing stopped')
  // Found on its owner: the migration did not complete, and the record says so no more.
  const stayed = restore(
    [record({ state: 'running', owner: 'host-a1', last_owner: 'host-a1', reason: 'busy', migration: { to: 'host-a2', op: 7_000_005 } })],
    { 'host-a1': [{ role: 'web1', op: 3 }] },
  )
  t.match(stayed.c.role('web1'), { state: 'running', owner: 'host-a1', reason: 'found running on host-a1' })
  t.notOk('migration' in stayed.c.role('web1')!)
})

t.test('old records (without the fields) still load; a stopping one without a cause stays stopped', async (t) => {
  const old = JSON.parse(
    encodeRole(record({ state: 'stopping', owner: 'host-a1', last_owner: 'host-a1', reason: 'moving to host-b1' })),
  ) as Record<string, unknown>
  t.notOk('stop_cause' in old || 'migration' in old, 'as an older version wrote it')
  const decoded = decodeRoles({ [roleKey('web1')]: JSON.stringify(old) })
  t.same(decoded.damaged, [])
  t.notOk('stop_cause' in decoded.roles[0]! || 'migration' in decoded.roles[0]!, 'read with the defaults: no cause known, no migration')
  t.equal(restore(decoded.roles).c.role('web1')?.state, 'stopped', 'the safe reading: nothing runs twice, the operator may start it')
  const now = decodeRoles({
    [roleKey('web1')]: encodeRole(
      record({ state: 'stopping', owner: 'host-a1', last_owner: 'host-a1', reason: 'x', stop_cause: 'policy' }),
    ),
  })
  t.equal(now.roles[0]?.stop_cause, 'policy', 'a new record round-trips')
  t.ok(
    decodeRoles({ [roleKey('web1')]: JSON.stringify({ ...old, stop_cause: 'whim' }) }).damaged.length === 1,
    'an unknown cause is a damaged record',
  )
})

t.test(
  'finer error codes: raised with one, an error keeps its family as code (statuses, exit codes) and the finer one as detail',
  async (t) => {
    const e = new HvlabError('HVLAB_E_FENCED', 'write refused', { origin: 'array-a' })
    t.match(e, {
      code: 'HVLAB_E_REFUSED',
      detail: 'HVLAB_E_FENCED',
      wireCode: 'HVLAB_E_FENCED',
      origin: 'array-a',
      message: 'write refused',
    })
    t.equal(describeError(e), 'array-a: write refused')
    t.equal(new HvlabError('HVLAB_E_NO_QUORUM', 'x').code, 'HVLAB_E_STATE')
    t.equal(new HvlabError('HVLAB_E_STATE', 'x').detail, undefined)
    t.equal(asErrorCode('HVLAB_E_NO_QUORUM'), 'HVLAB_E_NO_QUORUM', 'known on the wire')
    t.equal(asErrorCode('HVLAB_E_FROM_THE_FUTURE'), 'HVLAB_E_REFUSED', 'an unknown code reads as a refusal, as before')
    t.equal(asErrorCode('HVLAB_E_FROM_THE_FUTURE', 'HVLAB_E_STATE'), 'HVLAB_E_STATE', 'or as the family given')
    t.notOk(
      HvlabError.has(new HvlabError('HVLAB_E_STATE', 'the cluster has no coordinator with quorum right now'), 'HVLAB_E_NO_QUORUM'),
      'the words alone are no code',
    )
  },
)
