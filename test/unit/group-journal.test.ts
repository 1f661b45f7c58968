/**
 * A Remote Copy group's journal survives damage: appends are written whole even when the
 * disk takes fewer bytes per write (short writes); a torn line in the middle of `.blocks`
 * is skipped and counted; an array whose journal is damaged still opens, reports it (log,
 * `rc.journal-damaged` on the timeline, `journal_damaged` in status) and resyncs what it
 * cannot trust (a source: every block, by comparison; a target: every block its rollback
 * snapshot holds stays in its rollback set). A rollback snapshot with a record that cannot
 * be framed keeps the records before it and says it is damaged.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockSnapshot } from '../../array-emulator/block-snapshot.js'
import { GroupJournal, type BlockAppend } from '../../array-emulator/group-journal.js'
import { rcGroupConfig, type RcGroupRecord } from '../../array-emulator/remote-copy-group.js'
import { writeAll } from '../../array-emulator/write-all.js'
import { openTestArray } from './remote-copy-fixture.js'

const BS = 4096
const BLOCKS = 16

function tempDir(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const dirtyAppend = (blocks: number[]): BlockAppend => ({ kind: 'persist-blocks', set: 'dirty', volume: 'v', blocks })

/** A group's record as the array keeps it: one volume v of BLOCKS blocks, synced once, nothing pending. */
function record(role: 'primary' | 'secondary'): RcGroupRecord {
  return {
    format: 1,
    config: rcGroupConfig({ group: 'g', partner: 'b', role, mode: 'periodic', block_size_bytes: BS, period_ms: 60_000 }),
    role,
    started: true,
    seq: 0,
    cycle_seq: 3,
    generation: 0,
    incarnation: 2,
    last_sync_ms: 1000,
    bytes_resynced_total: 0,
    volumes: [{ volume: 'v', remote_volume: 'v', block_count: BLOCKS, synced_once: true, dirty: [], rollback: [], compare: false }],
  }
}

/** A journal with three appends, the middle one torn by a short write that the next append followed directly. */
async function journalWithTornMiddleLine(rcDir: string, r: RcGroupRecord, set: 'dirty' | 'rollback'): Promise<void> {
  const j = await GroupJournal.open(rcDir, 'g')
  await j.persist(r)
  for (const blocks of [[1], [2], [3]]) await j.append({ kind: 'persist-blocks', set, volume: 'v', blocks })
  await j.close()
  const path = join(rcDir, 'g.blocks')
  const [first, second, third] = readFileSync(path, 'utf8').split('\n')
  writeFileSync(path, `${first}\n${second!.slice(0, 20)}${third}\n`)
}

/** Makes every FileHandle.write take at most `bytes_max` bytes (what a short write does), until the test ends. */
async function shortWrites(t: { teardown(fn: () => unknown): void }, dir: string, bytes_max: number): Promise<void> {
  const probe = await open(join(dir, '.probe'), 'w')
  const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<{ bytesWritten: number }> }
  await probe.close()
  const original = proto.write
  proto.write = function (this: FileHandle, data: unknown, ...rest: unknown[]) {
    if (typeof data === 'string') {
      const bytes = Buffer.from(data, 'utf8')
      return original.call(this, bytes, 0, Math.min(bytes_max, bytes.length)).then((r) => ({ bytesWritten: r.bytesWritten, buffer: data }))
    }
    const b = data as Uint8Array
    const offset = typeof rest[0] === 'number' ? rest[0] : 0
    const length = typeof rest[1] === 'number' ? rest[1] : b.byteLength - offset
    return original.call(this, b, offset, Math.min(bytes_max, length), rest[2])
  }
  t.teardown(() => {
    proto.write = original
  })
}

t.test('a torn line in the middle of .blocks is skipped and counted, the lines around it kept', async (t) => {
  const dir = tempDir(t)
  await journalWithTornMiddleLine(dir, record('primary'), 'dirty')
  const loaded = await (await GroupJournal.open(dir, 'g')).load()
  t.equal(loaded?.damaged_lines, 1, 'one unreadable line (the torn append and the one written right after it)')
  t.same(loaded?.appended, [dirtyAppend([1])], 'the whole line before it is kept')
})

t.test('a source whose journal is damaged opens, reports it, and resyncs every block by comparison', async (t) => {
  const root = tempDir(t)
  await journalWithTornMiddleLine(join(root, 'rc'), record('primary'), 'dirty')
  const events: { kind: string; details: Record<string, unknown> }[] = []
  const { store, rc } = await openTestArray(root, 'b', { send: async () => false, emit: (kind, details) => events.push({ kind, details }) })
  t.teardown(async () => {
    await rc.close()
    await store.close()
  })
  const [g] = rc.status('g')
  t.equal(g!.journal_damaged, true, 'status says the journal was damaged')
  t.equal(g!.bytes_behind, BLOCKS * BS, 'every block is to be resynced, not only the blocks the journal still names')
  t.match(
    events,
    [{ kind: 'rc.journal-damaged', details: { group: 'g', lines_skipped: 1, rollback_snapshot_damaged: false } }],
    'on the timeline',
  )
  const saved = JSON.parse(readFileSync(join(root, 'rc', 'g.json'), 'utf8')) as RcGroupRecord
  t.match(saved.volumes[0], { compare: true, dirty: [[0, BLOCKS]] }, 'the rebuilt sets are recorded at once: a full compare')
  t.equal(readFileSync(join(root, 'rc', 'g.blocks'), 'utf8'), '', 'and the damaged appends are gone')
})

t.test('a target whose journal is damaged keeps every block its rollback snapshot holds in its rollback set', async (t) => {
  const root = tempDir(t)
  const rcDir = join(root, 'rc')
  await journalWithTornMiddleLine(rcDir, record('secondary'), 'rollback')
  const snap = await BlockSnapshot.durable(join(rcDir, 'g.rollback'), BS)
  await snap.preserve('v', [1, 2, 3, 5], () => Buffer.alloc(BS, 7))
  await snap.close()
  const events: string[] = []
  const { store, rc } = await openTestArray(root, 'b', { send: async () => false, emit: (kind) => events.push(kind) })
  t.teardown(async () => {
    await rc.close()
    await store.close()
  })
  t.ok(events.includes('rc.journal-damaged'))
  t.equal(rc.status('g')[0]!.journal_damaged, true)
  const saved = JSON.parse(readFileSync(join(rcDir, 'g.json'), 'utf8')) as RcGroupRecord
  t.same(
    saved.volumes[0]!.rollback,
    [
      [1, 3],
      [5, 1],
    ],
    'blocks 1, 2, 3 and 5 can still be rolled back',
  )
})

t.test('short writes: journal appends and preserved blocks are written whole', async (t) => {
  const dir = tempDir(t)
  const j = await GroupJournal.open(dir, 'g')
  await j.persist(record('primary'))
  const snap = await BlockSnapshot.durable(join(dir, 'g.rollback'), BS)
  await shortWrites(t, dir, 7)
  const appends = [
    dirtyAppend([1, 2, 3]),
    dirtyAppend([200, 201]),
    { kind: 'persist-blocks', set: 'rollback', volume: 'w', blocks: [9] } as BlockAppend,
  ]
  for (const a of appends) await j.append(a)
  await snap.preserve('v', [4, 9], (b) => Buffer.alloc(BS, b))
  await j.close()
  await snap.close()
  const loaded = await (await GroupJournal.open(dir, 'g')).load()
  t.same(loaded?.appended, appends, 'every append reads back whole')
  t.equal(loaded?.damaged_lines, 0)
  const back = await BlockSnapshot.durable(join(dir, 'g.rollback'), BS)
  t.equal(back.damaged, false)
  t.same(back.get('v', 4), Buffer.alloc(BS, 4), 'every preserved block reads back whole')
  t.same(back.get('v', 9), Buffer.alloc(BS, 9))
})

t.test('a write that makes no progress fails loudly instead of leaving a torn record', async (t) => {
  const stuck = { write: async () => ({ bytesWritten: 0 }) }
  await t.rejects(writeAll(stuck, Buffer.from('hello'), 'appending to g.blocks'), {
    code: 'HVLAB_E_INTERNAL',
    message: /appending to g\.blocks: the disk took 0 of the last 5 bytes/,
  })
  let calls = 0
  const short = { write: async (_b: Uint8Array, _o: number, length: number) => ({ bytesWritten: Math.min(2, length), n: ++calls }) }
  await writeAll(short, Buffer.from('hello'), 'x')
  t.equal(calls, 3, 'looped over the short writes: 2 + 2 + 1 bytes')
})

t.test('a rollback snapshot with a record it cannot frame keeps the records before it and says it is damaged', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'g.rollback')
  const snap = await BlockSnapshot.durable(path, BS)
  await snap.preserve('v', [1], () => Buffer.alloc(BS, 1))
  await snap.close()
  const bad = Buffer.alloc(2 + 1 + 8 + BS)
  bad.writeUInt16LE(1, 0)
  bad.write('v', 2)
  bad.writeDoubleLE(0.5, 3) // not a block number
  writeFileSync(path, Buffer.concat([readFileSync(path), bad]))
  const back = await BlockSnapshot.durable(path, BS)
  t.equal(back.damaged, true)
  t.same(back.get('v', 1), Buffer.alloc(BS, 1), 'the record before the damage is kept')
  t.equal(back.size, 1)
})
