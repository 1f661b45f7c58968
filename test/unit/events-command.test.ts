/**
 * `hvlab events` without and with a lab: its filters over typed events (kind or family,
 * the VM the details name, the source, a time, after a seq) and --tail; the events files a
 * stopped lab left, read oldest first past a torn line; every bad option a usage error
 * (exit 2) naming it; --follow refused without a running lab; the same filters over the
 * events a running lab's controller streams (a fake control endpoint here).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseKinds, parseSince, resolveKinds } from '../../scripts/cli/event-options.js'
import { EventSieve, eventSelected, type EventSelection } from '../../scripts/cli/event-selection.js'
import { readEventsFiles, timelineEventOf } from '../../scripts/cli/events-file.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import { labLayout } from '../../shared/lab-layout.js'
import { EVENT_KINDS, type TimelineEvent } from '../../shared/timeline/events.js'
import { DEFAULT_TOPOLOGY_FILE } from '../../shared/topology.js'
import { readFileSync } from 'node:fs'

const T0 = Date.parse('2026-01-31T10:00:00Z')
const ev = (seq: number, kind: string, source: string, details: Record<string, unknown>, at_ms = T0 + seq * 1000): TimelineEvent =>
  ({ seq, at_ms, kind, source, details }) as unknown as TimelineEvent

/** A small timeline: processes, cluster, a role, a VM, a Remote Copy group whose `role` is not a VM. */
const TIMELINE: TimelineEvent[] = [
  ev(1, 'process.started', 'lab', { process: 'host-a1', role: 'host', site: 'site-a', pid: 10 }),
  ev(2, 'cluster.node-down', 'host-a2', { node: 'host-b1' }),
  ev(3, 'role.running', 'host-a2', { role: 'web1', node: 'host-a2', from: 'starting', reason: 'start' }),
  ev(4, 'vm.started', 'host-a2', { vm: 'web1', op: 1, epoch: 3, by: 'host-a2' }),
  ev(5, 'rc.started', 'array-a', { group: 'rc-web1', role: 'web1' }),
  ev(6, 'role.stopped-no-quorum', 'host-b2', { node: 'host-b2', vms: ['db1', 'web1'], without_lease_ms: 3500, reason: 'no quorum' }),
  ev(7, 'cluster.quorum-lost', 'host-b2', { epoch: 4 }),
  ev(8, 'process.crashed', 'lab', { process: 'witness', pid: 12, code: null, signal: 'SIGKILL', requested: false, lastLogLines: [] }),
]

const all: EventSelection = { after: 0, kinds: [] }
const seqs = (s: EventSelection): number[] => TIMELINE.filter((e) => eventSelected(s, e)).map((e) => e.seq)

t.test('filters: kind or family, VM named in details, source, since, after', async (t) => {
  t.same(seqs(all), [1, 2, 3, 4, 5, 6, 7, 8], 'no filter: every event')
  t.same(seqs({ ...all, kinds: ['cluster.'] }), [2, 7], 'a family')
  t.same(seqs({ ...all, kinds: ['cluster.node-down', 'process.crashed'] }), [2, 8], 'exact kinds')
  t.same(seqs({ ...all, vm: 'web1' }), [3, 4, 6], 'vm, role of a role event, vms list; not the rc group whose role is a word')
  t.same(seqs({ ...all, vm: 'db1' }), [6])
  t.same(seqs({ ...all, source: 'lab' }), [1, 8])
  t.same(seqs({ ...all, since_ms: T0 + 6000 }), [6, 7, 8])
  t.same(seqs({ ...all, after: 5 }), [6, 7, 8])
  t.same(seqs({ after: 2, kinds: ['cluster.', 'role.'], source: 'host-b2' }), [6, 7], 'all of them at once')
})

t.test('--tail keeps the last N selected until the backlog ends, then passes each new one', async (t) => {
  const printed: number[] = []
  const sieve = new EventSieve({ ...all, kinds: ['role.', 'cluster.'] }, 2, (e) => printed.push(e.seq))
  for (const e of TIMELINE.slice(0, 7)) sieve.take(e)
  t.same(printed, [], 'nothing before the end of the backlog')
  sieve.endOfBacklog()
  t.same(printed, [6, 7], 'the last two matching')
  t.equal(sieve.lastSeenSeq, 7)
  sieve.take(TIMELINE[6]!)
  sieve.take(ev(9, 'cluster.node-up', 'host-a1', { node: 'host-b1' }))
  sieve.take(ev(10, 'peer.lost', 'host-a1', { peer: 'x', reason: 'r' }))
  t.same(printed, [6, 7, 9], 'then each new matching one, once')
  t.equal(sieve.lastSeenSeq, 10, 'followed from the newest seen, matching or not')
  const many: number[] = []
  const big = new EventSieve(all, 3, (e) => many.push(e.seq))
  for (let i = 1; i <= 100; i++) big.take(ev(i, 'peer.lost', 'h', { peer: 'x', reason: 'r' }))
  big.endOfBacklog()
  t.same(many, [98, 99, 100])
})

t.test('option parsers: kinds, families, durations, ISO times', async (t) => {
  const kinds = (value: string, previous: string[] = []): string[] => resolveKinds(parseKinds(value, previous), EVENT_KINDS)
  t.same(parseKinds('cluster.,process.crashed', ['role.']), ['role.', 'cluster.', 'process.crashed'])
  t.same(kinds('cluster.,process.crashed', ['role.']), ['role.', 'cluster.', 'process.crashed'])
  t.same(kinds('cluster'), ['cluster.'], 'a family without its dot')
  t.throws(() => kinds('clutser.'), { code: 'HVLAB_E_USAGE', message: /--kind clutser\.: no event kind or family[^]*cluster\./ })
  t.throws(() => parseKinds(','), { code: 'HVLAB_E_USAGE' })
  const now = T0
  t.equal(parseSince('5m', now), now - 300_000)
  t.equal(parseSince('30s', now), now - 30_000)
  t.equal(parseSince('2026-01-31T09:00:00Z', now), T0 - 3_600_000)
  for (const bad of ['5', 'yesterday', '5 m', '2026-13-45', '-5m'])
    t.throws(() => parseSince(bad, now), { code: 'HVLAB_E_USAGE', message: /^--since / }, bad)
})

function captured(): { io: CliIo; stdout(): string; stderr(): string } {
  const out: string[] = []
  const err: string[] = []
  return {
    io: { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), isTTY: false },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  }
}

async function hvlab(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = captured()
  const code = await runHvlab(argv, c.io)
  return { code, stdout: c.stdout(), stderr: c.stderr() }
}

const lines = (events: readonly TimelineEvent[]): string => events.map((e) => JSON.stringify(e) + '\n').join('')
const printedSeqs = (stdout: string): number[] =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as TimelineEvent).seq)

/** A stopped lab's data dir: its topology copy and two events files (the older rotated one, the current one with a torn last line). */
function stoppedLab(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-events-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'topology.json'), readFileSync(DEFAULT_TOPOLOGY_FILE))
  writeFileSync(join(dir, 'events.1.jsonl'), lines(TIMELINE.slice(0, 4)))
  writeFileSync(join(dir, 'events.2.jsonl'), lines(TIMELINE.slice(4)) + '{"seq":9,"at_ms":1,"kind":"peer.lo')
  return dir
}

t.test('the events files of a stopped lab: oldest first, a torn line passed over', async (t) => {
  const dir = stoppedLab(t)
  t.equal(timelineEventOf('{"seq":1,"at_ms":1,"kind":"no.such-kind","source":"x","details":{}}'), undefined, 'an unknown kind')
  t.equal(timelineEventOf('[1,2]'), undefined)
  const got: number[] = []
  const read = await readEventsFiles(labLayout(dir), (e) => got.push(e.seq))
  t.same(got, [1, 2, 3, 4, 5, 6, 7, 8])
  t.equal(read.files.length, 2)
  t.equal(read.lines_skipped, 1, 'the torn line')
})

t.test('`hvlab events` after down: read from the files, with the filters; --follow refused', async (t) => {
  const dir = stoppedLab(t)
  const vm = await hvlab('events', '--dir', dir, '--json', '--vm', 'web1')
  t.equal(vm.code, 0)
  t.same(printedSeqs(vm.stdout), [3, 4, 6])
  t.match(vm.stderr, /no lab is running in .*; read its timeline from 2 events file\(s\); 1 line\(s\) that were not whole events/)
  const tail = await hvlab('events', '--dir', dir, '--json', '--kind', 'cluster.', '--kind', 'process.crashed', '--tail', '2')
  t.same(printedSeqs(tail.stdout), [7, 8])
  const text = await hvlab('events', '--dir', dir, '--source', 'witness')
  t.equal(text.code, 0)
  t.equal(text.stdout, '', 'the witness emitted none of these')
  const since = await hvlab('events', '--dir', dir, '--json', '--since', '2026-01-31T10:00:07Z', '--after', '1')
  t.same(printedSeqs(since.stdout), [7, 8])
  const follow = await hvlab('events', '--dir', dir, '--follow')
  t.equal(follow.code, 1)
  t.match(follow.stderr, /no lab is running in .*: --follow needs one/)
  const empty = mkdtempSync(join(tmpdir(), 'hvlab-events-empty-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  const none = await hvlab('events', '--dir', empty)
  t.equal(none.code, 1)
  t.match(none.stderr, /no lab is running in .* and it has no timeline/)
})

t.test('every bad option of `hvlab events` is a usage error naming it (exit 2)', async (t) => {
  const dir = stoppedLab(t)
  const cases: [string[], RegExp][] = [
    [['--kind', 'bogus'], /--kind bogus: no event kind or family/],
    [['--vm', 'Web 1'], /--vm "Web 1": a name is 1–63/],
    [['--source', 'host-z9'], /--source host-z9: the lab has no process of that name; known: lab host-a1/],
    [['--source', '../x'], /--source "..\/x": a name/],
    [['--since', 'soon'], /--since "soon": give a duration/],
    [['--tail', '0'], /--tail "0": give a whole number from 1/],
    [['--tail', 'ten'], /--tail "ten"/],
    [['--after', '-1'], /--after "-1": give a whole number from 0/],
  ]
  for (const [args, message] of cases) {
    const r = await hvlab('events', '--dir', dir, ...args)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, message)
    t.equal(r.stdout, '')
  }
})

t.test('with a lab running: the same filters over the controller’s events, then following from the last seen', async (t) => {
  const asked: string[] = []
  const server = createServer((req, res) => {
    asked.push(req.url ?? '')
    const after = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('after'))
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    res.end(lines(TIMELINE.filter((e) => e.seq > after)))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-events-running-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'secret'), 'test-secret\n')
  const port = (server.address() as AddressInfo).port
  writeFileSync(join(dir, 'control.json'), JSON.stringify({ pid: process.pid, httpPort: port, peerPort: 1, topology: 'x', started_ms: 0 }))
  const r = await hvlab('events', '--dir', dir, '--json', '--vm', 'web1', '--tail', '2')
  t.equal(r.code, 0)
  t.same(printedSeqs(r.stdout), [4, 6])
  t.same(asked, ['/v1/events?after=0'], 'no file read, one request')
  asked.length = 0
  // This fake answers a follower with its backlog and ends: enough to see what it asks.
  const f = await hvlab('events', '--dir', dir, '--json', '--kind', 'cluster.', '--after', '3', '--follow')
  t.equal(f.code, 0)
  t.same(printedSeqs(f.stdout), [7])
  t.same(asked, ['/v1/events?after=3&follow=1'], 'following: one stream from --after')
  asked.length = 0
  const tf = await hvlab('events', '--dir', dir, '--json', '--kind', 'cluster.,role.', '--tail', '1', '--follow')
  t.same(printedSeqs(tf.stdout), [7])
  t.same(asked, ['/v1/events?after=0', '/v1/events?after=8&follow=1'], 'with --tail: the backlog, then a follower after the newest seen')
})
