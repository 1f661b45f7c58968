/**
 * runHvlab, the one way the `hvlab` command line runs (the binary and the lab tests): help,
 * commander's usage errors, a command's own errors and exit codes, all written to the run's
 * io and never to the process; the same code, stdout and stderr as the real binary; a
 * captured run that hangs times out; Ctrl-C reaches a command through the io. No lab: a
 * fake control endpoint (an HTTP server in this process) plays the controller where needed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { currentIo, processIo, setExitCode, withCliRun } from '../../scripts/cli/cli-io.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import { chosenClusterName } from '../../scripts/cli/cluster-choice.js'
import { CLI_TIMED_OUT, runCli, runCliInProcess } from '../lab/lab-fixture.js'

interface Captured {
  io: CliIo
  stdout(): string
  stderr(): string
}

function captured(extra: Partial<CliIo> = {}): Captured {
  const out: string[] = []
  const err: string[] = []
  return {
    io: { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), isTTY: false, ...extra },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  }
}

const emptyDir = mkdtempSync(join(tmpdir(), 'hvlab-cli-run-'))
t.teardown(() => rmSync(emptyDir, { recursive: true, force: true }))
const exitCodeBefore = process.exitCode

t.test('--help: the usage on stdout, exit 0', async (t) => {
  const c = captured()
  t.equal(await runHvlab(['--help'], c.io), 0)
  t.match(c.stdout(), /^Usage: hvlab \[options\] \[command\]\n/)
  t.match(c.stdout(), /\n {2}status \[options\] +every process/)
  t.match(c.stdout(), /\n {2}csv +Cluster Shared Volumes/, 'the registered command groups are there')
  t.equal(c.stderr(), '')
  const sub = captured()
  t.equal(await runHvlab(['kill', '--help'], sub.io), 0)
  t.match(
    sub.stdout(),
    /^Usage: hvlab kill \[options\] \[name\]\n[^]*--signal <signal> +signal to send \(choices: "KILL", "TERM", "STOP", "CONT",/,
  )
})

t.test('no command: the usage on stderr, exit 2 (bad usage)', async (t) => {
  const c = captured()
  t.equal(await runHvlab([], c.io), 2)
  t.equal(c.stdout(), '')
  t.match(c.stderr(), /^Usage: hvlab \[options\] \[command\]/)
})

t.test("commander's usage errors: its message and hint on stderr, exit 2 as every usage error", async (t) => {
  const cases: [string[], string][] = [
    [['frobnicate'], "error: unknown command 'frobnicate'\n(run with --help for usage)\n"],
    [
      ['kill', 'host-a1', '--signal', 'HUP', '--dir', emptyDir],
      "error: option '--signal <signal>' argument 'HUP' is invalid. Allowed choices are KILL, TERM, STOP, CONT.\n(run with --help for usage)\n",
    ],
    [['restart'], "error: missing required argument 'name'\n(run with --help for usage)\n"],
    [['status', '--bogus'], "error: unknown option '--bogus'\n(run with --help for usage)\n"],
  ]
  for (const [argv, stderr] of cases) {
    const c = captured()
    t.equal(await runHvlab(argv, c.io), 2, `hvlab ${argv.join(' ')}: exit 2`)
    t.equal(c.stderr(), stderr, `hvlab ${argv.join(' ')}: stderr`)
    t.equal(c.stdout(), '')
  }
})

t.test("a command's own errors: `hvlab: …` on stderr, exit 1, or 2 for a usage error", async (t) => {
  const c = captured()
  t.equal(await runHvlab(['status', '--dir', emptyDir], c.io), 1)
  t.equal(
    c.stderr(),
    `hvlab: no lab is running in ${emptyDir}; start one with \`hvlab up --detach --dir ${emptyDir}\` (or pass the --dir of a running lab)\n`,
  )
  t.equal(c.stdout(), '')
  const usage = captured()
  t.equal(await runHvlab(['vm', 'load', 'vm1', '--dir', emptyDir], usage.io), 2, 'HVLAB_E_USAGE exits 2')
  t.equal(usage.stderr(), 'hvlab: say what to change: --dirty-mib-s, --hot and/or --disk-iops\n')
  const faults: [string[], string][] = [
    [['kill'], 'name one process or one --site'],
    [['kill', 'host-a1', '--site', 'site-a'], 'name one process or one --site'],
    [['partition', '--halves', '--ring'], 'pick one shape, not halves and ring'],
    [['partition', 'site-a'], 'name two sides (A B) or a shape'],
    [['partition', 'site-a', 'site-b', '--isolate', 'witness'], 'a shape (--isolate) covers every process: name no sides'],
    [['partition', '--bridge', '--one-way'], '--one-way cuts one direction between two named sides, not a shape'],
    [['partition', 'site-a', 'site-b', '--seed', '3'], '--seed orders the processes of a shape'],
    [['vm', 'create', 'replica-broker'], "replica-broker is the name of the cluster's Replica Broker role"],
    [['vm', 'remove', 'replica-broker'], "replica-broker is the cluster's Replica Broker"],
    [
      ['vm', 'create', 'b1', '--on', 'replica-dr1', '--storage', 'local'],
      "--on replica-dr1 creates the VM on that standalone host's own storage",
    ],
  ]
  for (const [argv, why] of faults) {
    const c = captured()
    t.equal(await runHvlab([...argv, '--dir', emptyDir], c.io), 2, `hvlab ${argv.join(' ')}: exit 2`)
    t.match(c.stderr(), `hvlab: ${why}`, `hvlab ${argv.join(' ')}: why`)
  }
})

t.test('a command group without its subcommand names what is missing, exit 2', async (t) => {
  const misplaced = captured()
  t.equal(await runHvlab(['vm', '--dir', emptyDir], misplaced.io), 2)
  t.match(misplaced.stderr(), /^hvlab: hvlab vm needs a subcommand before --dir: one of create, start, .*list, ping; options go after it/)
  const nested = captured()
  t.equal(await runHvlab(['array', 'volume', '--json'], nested.io), 2)
  t.match(nested.stderr(), /^hvlab: hvlab array volume needs a subcommand before --json: one of create/)
  const unknown = captured()
  t.equal(await runHvlab(['vm', 'bogus'], unknown.io), 2)
  t.match(unknown.stderr(), /^hvlab: hvlab vm has no subcommand bogus; choose one of: create, /)
  const bare = captured()
  t.equal(await runHvlab(['vm'], bare.io), 2, 'with nothing after it: its help on stderr, bad usage')
  t.match(bare.stderr(), /^Usage: hvlab vm \[options\] \[command\]/)
})

t.test('concurrent runs write to their own io only', async (t) => {
  const a = captured()
  const b = captured()
  const [codeA, codeB] = await Promise.all([runHvlab(['--help'], a.io), runHvlab(['status', '--dir', emptyDir], b.io)])
  t.same([codeA, codeB], [0, 1])
  t.match(a.stdout(), /^Usage: hvlab/)
  t.equal(a.stderr(), '')
  t.equal(b.stdout(), '')
  t.match(b.stderr(), /^hvlab: no lab is running/)
})

t.test('the exit code a command sets belongs to its run, never to the process', async (t) => {
  const r = await withCliRun(captured().io, async () => {
    setExitCode(1)
    return 'printed'
  })
  t.same(r, { result: 'printed', exitCode: 1 })
  t.same(await withCliRun(captured().io, async () => 'ok'), { result: 'ok', exitCode: 0 }, 'no code set: 0')
  t.throws(() => setExitCode(1), /outside an hvlab run/, 'outside a run it refuses rather than set process.exitCode')
  t.equal(currentIo(), processIo, 'outside a run the io is the process’s')
  t.equal(process.exitCode, exitCodeBefore, 'process.exitCode untouched by every run so far')
})

t.test('the same code, stdout and stderr as the real binary', async (t) => {
  for (const argv of [['kill', 'host-a1', '--signal', 'HUP', '--dir', emptyDir]]) {
    const c = captured()
    const code = await runHvlab(argv, c.io)
    const real = await runCli(argv)
    t.same({ code, stdout: c.stdout(), stderr: c.stderr() }, real, `hvlab ${argv.join(' ')}`)
  }
})

/** A control endpoint in this process: a lab dir whose control.json points at it (pid: ours, alive). */
async function fakeController(
  t: { teardown(fn: () => unknown): void },
  handle: (path: string, res: ServerResponse) => void,
): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-cli-run-lab-'))
  const server = createServer((req, res) => handle(req.url ?? '', res))
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

t.test('an in-process run that hangs times out with code 124 and says so', async (t) => {
  const dir = await fakeController(t, () => {}) // never answers
  const r = await runCliInProcess(['status', '--dir', dir], 300)
  t.equal(r.code, CLI_TIMED_OUT)
  t.match(r.stderr, /hvlab status --dir \S+: timed out after 300 ms/)
  t.equal(r.stdout, '')
})

t.test('Ctrl-C reaches `events --follow` through the io: it stops following, exit 0', async (t) => {
  const dir = await fakeController(t, (path, res) => {
    t.match(path, /^\/v1\/events\?after=0&follow=1/)
    res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    res.write(JSON.stringify({ seq: 1, at_ms: 0, kind: 'process.started', source: 'lab', details: { process: 'witness' } }) + '\n') // and stays open
  })
  let interrupt: (() => void) | undefined
  let removed = false
  const c = captured({
    onInterrupt(listener) {
      interrupt = listener
      return () => (removed = true)
    },
  })
  const run = runHvlab(['events', '--follow', '--json', '--dir', dir], c.io)
  for (let i = 0; i < 1000 && !c.stdout().includes('\n'); i++) await new Promise((r) => setTimeout(r, 10))
  t.ok(interrupt, 'the command listens for Ctrl-C on its io')
  interrupt?.()
  t.equal(await run, 0)
  t.same(JSON.parse(c.stdout()), { seq: 1, at_ms: 0, kind: 'process.started', source: 'lab', details: { process: 'witness' } })
  t.equal(c.stderr(), '')
  t.ok(removed, 'it stops listening when done')
})

t.test('replica enable --extend-to: refused up front where the initial replication is not awaited here, or not to a server', async (t) => {
  const cases: [string[], RegExp][] = [
    [
      ['--no-wait'],
      /--extend-to forwards the replica once its initial replication is done here: not with --initial network, --start-at or --no-wait/,
    ],
    [['--initial', 'seed'], /not with --initial seed/],
    [['--start-at', new Date(Date.now() + 3_600_000).toISOString()], /--start-at or --no-wait/],
  ]
  for (const [more, why] of cases) {
    const c = captured()
    t.equal(
      await runHvlab(['replica', 'enable', 'web1', '--to', 'dr1', '--extend-to', 'dr2', ...more, '--dir', emptyDir], c.io),
      2,
      more.join(' '),
    )
    t.match(c.stderr(), why)
  }
  const other = captured()
  t.equal(await runHvlab(['replica', 'enable', 'web1', '--to', 'cluster:dr', '--extend-to', 'dr2', '--dir', emptyDir], other.io), 2)
  t.match(other.stderr(), /no --initial, --export-dir, --start-at or --extend-to/)
  const freq = captured()
  t.equal(await runHvlab(['replica', 'enable', 'web1', '--to', 'dr1', '--extend-to', 'dr2', '--extend-frequency', '30s'], freq.io), 2)
  t.match(freq.stderr(), /5m or 15m/)
})

t.test('--cluster is one run’s choice: the next run in the same process addresses the first cluster again', async (t) => {
  const c = captured()
  await runHvlab(['--cluster', 'dr', 'vm', 'list', '--dir', emptyDir], c.io)
  t.equal(chosenClusterName(), null)
})
