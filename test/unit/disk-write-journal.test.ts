/**
 * The host's disk write journal (agent/vm/disk-write-journal.ts) under a VmDisk on a
 * manual clock: each write is on record as issued before the port sees it, then as
 * acked, refused (HVLAB_E_FENCED) or failed (a plain error: in doubt), with matching
 * vm/epoch/seq/block and wall-clock times; every line passes the reader's parser, which
 * turns away lines the journal never writes. A journal that cannot be opened or written
 * never throws into the writer and reports once. On a host (agent/host-lab-env.ts) one
 * journal in its data dir takes every VM's writes, and one that cannot be opened stops it
 * from starting.
 */
import t from 'tap'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DiskWriteJournal } from '../../agent/vm/disk-write-journal.js'
import {
  parseDiskJournalLine,
  type DiskJournalCompleted,
  type DiskJournalIssued,
  type DiskJournalLine,
} from '../../shared/disk-journal-format.js'
import type { DiskWriteRecord } from '../../agent/vm/disk-write-record.js'
import { VmDisk, failedWriteOutcome, type BlockIoPort } from '../../agent/vm/vm-disk.js'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import { labEnv } from '../../shared/lab-env.js'
import { labLayout } from '../../shared/lab-layout.js'
import { silentLogger } from '../../shared/log.js'
import { diskWriteJournalPath, hostLabOptions } from '../../agent/host-lab-env.js'
import { testVmAgent } from './vm-agent-fixture.js'

const BS = 4096
const place = { host: 'host-a1', array: 'array-a', volume: 'vm1-disk0' }

const linesOf = (path: string): string[] =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')

/** A port that answers the n-th write (from 0) with `outcomes[n]` ('ack' past the end), checking the journal first. */
function scriptedPort(outcomes: ('ack' | 'fenced' | 'lost')[], journalPath: string, seenFirst: string[]): BlockIoPort {
  let n = 0
  return {
    write: async (_array, request) => {
      const last = parseDiskJournalLine(linesOf(journalPath).at(-1) ?? '')
      seenFirst.push(`${last?.t} block ${last?.block} (sent block ${request.block})`)
      const outcome = outcomes[n++] ?? 'ack'
      if (outcome === 'fenced')
        throw new HvlabError('HVLAB_E_FENCED', 'write refused: the volume is reserved at epoch 9; this host has been fenced', {
          origin: 'array-a',
        })
      if (outcome === 'lost') throw new Error('socket hang up')
    },
    read: () => Promise.reject(new Error('no reads here')),
  }
}

async function tick(clock: ManualClock, ms: number): Promise<void> {
  for (let at = 0; at < ms; at += 10) {
    clock.advance(10)
    await new Promise((r) => setImmediate(r))
  }
}

t.test('every write is issued on record before it is sent, then completed with its outcome', async (t) => {
  const path = join(t.testdir(), 'disk-writes.jsonl')
  const errors: unknown[] = []
  const journal = new DiskWriteJournal(path, { onError: (e) => errors.push(e) })
  const seenFirst: string[] = []
  const clock = new ManualClock(0) // far from the wall clock: at_ms must not come from it
  const wall_before_ms = Date.now()
  const disk = new VmDisk({
    vm: 'vm1',
    target: { ...place, size_bytes: 64 * BS, epoch: () => 7 },
    io: scriptedPort(['ack', 'ack', 'ack', 'lost', 'ack', 'fenced'], path, seenFirst),
    clock,
    disk_iops: 100,
    journal,
  })
  await tick(clock, 200)
  await disk.detach()
  const wall_after_ms = Date.now()
  journal.close()

  t.same(errors, [], 'no journal errors')
  t.equal(seenFirst.length, 6, 'six writes were sent: the fenced one stopped the disk')
  t.ok(
    seenFirst.every((s) => /^issued block (\d+) \(sent block \1\)$/.test(s)),
    'when each write reached the port, its issued line was already the last line of the file',
  )
  const lines = linesOf(path).map(parseDiskJournalLine)
  t.ok(
    lines.every((l) => l !== null),
    'every line passes the parser',
  )
  const parsed = lines as DiskJournalLine[]
  t.same(
    parsed.map((l) => `${l.t} ${l.seq}`),
    [
      'issued 0',
      'acked 0',
      'issued 1',
      'acked 1',
      'issued 2',
      'acked 2',
      'issued 3',
      'failed 3',
      'issued 4',
      'acked 4',
      'issued 5',
      'refused 5',
    ],
  )
  const issued = parsed.filter((l): l is DiskJournalIssued => l.t === 'issued')
  const completed = parsed.filter((l): l is DiskJournalCompleted => l.t !== 'issued')
  for (const [i, c] of completed.entries()) {
    const w = issued[i]!
    t.match(c, { vm: w.vm, host: w.host, epoch: w.epoch, seq: w.seq, block: w.block }, `completion ${i} matches its issue`)
    t.ok(c.at_ms >= w.at_ms, 'completed no earlier than issued')
  }
  t.match(issued[0], { vm: 'vm1', host: 'host-a1', array: 'array-a', volume: 'vm1-disk0', epoch: 7, seq: 0, block: 0 })
  t.same(
    completed.map((c) => c.code),
    [null, null, null, null, null, 'HVLAB_E_FENCED'],
    'a typed refusal carries its stable code; an ack and a foreign error none',
  )
  t.ok(
    parsed.every((l) => l.at_ms >= wall_before_ms && l.at_ms <= wall_after_ms),
    "at_ms is the machine's wall clock, not the process's Clock",
  )
})

t.test("a failure's outcome comes from its stable code, never its message", async (t) => {
  t.same(failedWriteOutcome(new HvlabError('HVLAB_E_FENCED', 'x')), { outcome: 'refused', code: 'HVLAB_E_FENCED' })
  t.same(failedWriteOutcome(new HvlabError('HVLAB_E_DISK_FULL', 'x')), { outcome: 'refused', code: 'HVLAB_E_DISK_FULL' })
  t.same(
    failedWriteOutcome(new HvlabError('HVLAB_E_DISK_IO', 'x')),
    { outcome: 'failed', code: 'HVLAB_E_DISK_IO' },
    'fsync failed: in doubt',
  )
  t.same(
    failedWriteOutcome(new HvlabError('HVLAB_E_REFUSED', 'nothing was written; reserved at epoch 9')),
    { outcome: 'failed', code: 'HVLAB_E_REFUSED' },
    'a plain refusal may have reached the primary: in doubt',
  )
  t.same(failedWriteOutcome(new HvlabError('HVLAB_E_TIMEOUT', 'x')), { outcome: 'failed', code: 'HVLAB_E_TIMEOUT' })
  t.same(failedWriteOutcome(new Error('HVLAB_E_FENCED')), { outcome: 'failed', code: null })
})

const good: DiskJournalIssued = {
  t: 'issued',
  vm: 'vm1',
  host: 'host-a1',
  array: 'array-a',
  volume: 'vm1-disk0',
  epoch: 7,
  seq: 3,
  block: 3,
  value: 42,
  at_ms: 1_700_000_000_000,
}

t.test('the parser takes what the journal writes and turns away anything else', async (t) => {
  t.same(parseDiskJournalLine(JSON.stringify(good)), good)
  const done = { t: 'failed', vm: 'vm1', host: 'host-a1', epoch: 7, seq: 3, block: 3, at_ms: 5, code: 'HVLAB_E_TIMEOUT' }
  t.same(parseDiskJournalLine(JSON.stringify(done)), done)
  const { value: _value, ...missing } = good
  const bad: [string, string][] = [
    ['a missing field', JSON.stringify(missing)],
    ['a negative seq', JSON.stringify({ ...good, seq: -1 })],
    ['a seq past the safe integers', JSON.stringify({ ...good, seq: 2 ** 60 })],
    ['a fractional epoch', JSON.stringify({ ...good, epoch: 1.5 })],
    ['a huge vm name', JSON.stringify({ ...good, vm: 'v'.repeat(10_000) })],
    ['a long name under the line bound', JSON.stringify({ ...good, host: 'h'.repeat(500) })],
    ['an empty name', JSON.stringify({ ...good, array: '' })],
    ['an extra field', JSON.stringify({ ...good, extra: 1 })],
    ['an unknown kind', JSON.stringify({ ...done, t: 'lost' })],
    ['a code that is no code', JSON.stringify({ ...done, code: 'socket hang up' })],
    ['a completion without its code', JSON.stringify({ ...done, code: undefined })],
    ['not JSON', '{"t":"issued",'],
    ['a torn line', JSON.stringify(good).slice(0, 40)],
    ['JSON that is no object', '[1,2,3]'],
    ['null', 'null'],
  ]
  for (const [what, line] of bad) t.equal(parseDiskJournalLine(line), null, what)
})

const record: DiskWriteRecord = { vm: 'vm1', seq: 0, epoch: 1, block: 0, value: 0 }

for (const [what, pathOf] of [
  ['in a dir that does not exist', (dir: string) => join(dir, 'gone', 'disk-writes.jsonl')],
  ['that is a directory', (dir: string) => dir],
] as const) {
  t.test(`a journal whose file is ${what} never throws and reports once`, async (t) => {
    const errors: unknown[] = []
    const journal = new DiskWriteJournal(pathOf(t.testdir()), { onError: (e) => errors.push(e) })
    t.notOk(journal.writing)
    for (let i = 0; i < 3; i++) {
      journal.issued({ ...record, seq: i }, place)
      journal.completed({ ...record, seq: i }, 'acked', null, place)
    }
    t.equal(errors.length, 1, 'reported once')
    journal.close()
  })
}

t.test(
  'a journal whose disk is full (/dev/full) stops at the first write, reports once, never throws',
  { skip: !existsSync('/dev/full') },
  async (t) => {
    const errors: unknown[] = []
    const journal = new DiskWriteJournal('/dev/full', { onError: (e) => errors.push(e) })
    t.ok(journal.writing, 'it opens')
    journal.issued(record, place)
    t.notOk(journal.writing, 'the first failed write ends journaling')
    journal.completed(record, 'failed', 'HVLAB_E_TIMEOUT', place)
    journal.issued({ ...record, seq: 1 }, place)
    t.equal(errors.length, 1)
    t.match(errors[0], { code: 'ENOSPC' })
    journal.close()
  },
)

t.test('the host wiring: HVLAB_DISK_WRITE_JOURNAL=1 puts every vm of the host into one journal in its data dir', async (t) => {
  const layout = labLayout(t.testdir())
  const p = { name: 'host-a1', layout, log: silentLogger() }
  t.same(hostLabOptions(p, labEnv({})), {}, 'nothing set: no journal, nothing unsafe')
  t.notOk(existsSync(diskWriteJournalPath(p)), 'and no file')
  const options = hostLabOptions(p, labEnv({ HVLAB_DISK_WRITE_JOURNAL: '1', HVLAB_UNSAFE_TEST_ONLY: 'ignore-quorum-loss' }))
  t.equal(diskWriteJournalPath(p), join(layout.root, 'data', 'host-a1', 'disk-writes.jsonl'))
  t.equal(options.unsafe_ignore_quorum_loss, true)
  const clock = new ManualClock(0)
  const a = testVmAgent({
    clock,
    blockIoFor: () => ({ write: async () => {}, read: async () => new Uint8Array(BS) }),
    writerEpoch: () => 4,
    ...options,
  })
  const disk = (vm: string, n = 0) => ({ array: 'array-a', volume: `${vm}-disk${n}`, group: null, size_bytes: 64 * BS, csv: null })
  for (const vm of ['web1', 'db1']) {
    t.ok(a.startVm(vm, 64, 1, 4, 'host-b1', vm === 'web1' ? [disk(vm), disk(vm, 1)] : [disk(vm)]).ok)
    a.vms.instance(vm)!.setLoad({ disk_iops: 100 })
  }
  await tick(clock, 100)
  a.stop()
  await new Promise((r) => setImmediate(r))
  const lines = linesOf(diskWriteJournalPath(p)).map(parseDiskJournalLine)
  t.ok(
    lines.every((l) => l !== null),
    'every line parses',
  )
  const vms = new Set(lines.map((l) => `${l!.vm} on ${l!.host}, ${l!.t}`))
  t.same([...vms].sort(), ['db1 on host-a1, acked', 'db1 on host-a1, issued', 'web1 on host-a1, acked', 'web1 on host-a1, issued'])
  const data = lines.filter((l) => l!.disk === 1)
  t.ok(data.length > 0, "web1's data disk's writes are journaled as disk 1")
  t.ok(
    data.every((l) => l!.vm === 'web1' && (l!.t !== 'issued' || l!.volume === 'web1-disk1')),
    'to its own volume; no disk field on disk 0',
  )
  t.ok(
    lines.some((l) => l!.vm === 'web1' && l!.disk === undefined),
    'disk 0 lines carry no disk field',
  )
  options.disk_write_journal?.issued(record, place) // never closed by the host: it stays open
  t.equal(linesOf(diskWriteJournalPath(p)).length, lines.length + 1)
})

t.test('the host refuses to start when its journal cannot be opened', async (t) => {
  const p = { name: 'host-a1', layout: labLayout(t.testdir()), log: silentLogger() }
  mkdirSync(diskWriteJournalPath(p), { recursive: true }) // a directory where the file goes
  t.throws(() => hostLabOptions(p, labEnv({ HVLAB_DISK_WRITE_JOURNAL: '1' })), {
    code: 'HVLAB_E_STATE',
    message: /HVLAB_DISK_WRITE_JOURNAL=1 but the disk write journal .*disk-writes\.jsonl cannot be opened: EISDIR/,
  })
})
