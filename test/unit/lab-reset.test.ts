/**
 * `hvlab reset`: refuses a dir that does not exist or is not a lab's data dir, an unsafe
 * one, and (without a terminal) a reset without --yes — deleting nothing; asks on a
 * terminal for the lab's name; deletes only the lab's entries, leaves the others and says
 * which; stops a running lab first (a fake control endpoint plays its controller here).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'

async function hvlab(argv: string[], extra: Partial<CliIo> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), isTTY: false, ...extra }
  const code = await runHvlab(argv, io)
  return { code, stdout: out.join(''), stderr: err.join('') }
}

const scratch = mkdtempSync(join(tmpdir(), 'hvlab-reset-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
let made = 0

/** A stopped lab's data dir as a lab leaves it, plus a file of the user's. */
function labDir(withOwnFile = true): string {
  const dir = join(scratch, `lab${made++}`)
  mkdirSync(join(dir, 'data', 'host-a1'), { recursive: true, mode: 0o700 })
  mkdirSync(join(dir, 'data', 'array-a'), { recursive: true })
  mkdirSync(join(dir, 'logs'), { recursive: true })
  chmodSync(dir, 0o700)
  writeFileSync(join(dir, 'secret'), 's\n')
  writeFileSync(join(dir, 'topology.json'), JSON.stringify({ name: 'two-site' }))
  writeFileSync(join(dir, 'events.1.jsonl'), '{}\n')
  writeFileSync(join(dir, 'events.2.jsonl'), '{}\n')
  writeFileSync(join(dir, 'logs', 'host-a1.1.log'), 'x\n')
  writeFileSync(join(dir, 'data', 'array-a', 'vol.img'), 'x')
  if (withOwnFile) writeFileSync(join(dir, 'notes.txt'), 'mine')
  return dir
}

t.test('refusals delete nothing', async (t) => {
  const missing = await hvlab(['reset', '--dir', join(scratch, 'nope'), '--yes'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /nope does not exist; nothing to reset/)

  const notLab = join(scratch, 'not-a-lab')
  mkdirSync(join(notLab, 'data'), { recursive: true })
  chmodSync(notLab, 0o700)
  writeFileSync(join(notLab, 'important.txt'), 'keep')
  const refused = await hvlab(['reset', '--dir', notLab, '--yes'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /not-a-lab is not a lab's data dir \(no secret[^]*nothing was deleted/)
  t.same(readdirSync(notLab).sort(), ['data', 'important.txt'], 'untouched')

  const dir = labDir()
  const before = readdirSync(dir).sort()
  const noTty = await hvlab(['reset', '--dir', dir])
  t.equal(noTty.code, 2, 'a usage error')
  t.match(noTty.stderr, /stdin is not a terminal to confirm it: pass --yes/)
  t.same(readdirSync(dir).sort(), before, 'untouched')

  const wrong = await hvlab(['reset', '--dir', dir], { ask: async () => 'y' })
  t.equal(wrong.code, 1)
  t.match(wrong.stderr, /not confirmed \("y"\); nothing was deleted/)
  t.same(readdirSync(dir).sort(), before, 'a wrong answer deletes nothing')

  chmodSync(dir, 0o777)
  const unsafe = await hvlab(['reset', '--dir', dir, '--yes'])
  t.equal(unsafe.code, 1)
  t.match(unsafe.stderr, /writable by group and others/)
  t.same(readdirSync(dir).sort(), before)
})

t.test('confirmed with the lab’s name: the lab’s entries go, the others stay', async (t) => {
  const dir = labDir()
  const questions: string[] = []
  const r = await hvlab(['reset', '--dir', dir], { ask: async (q) => (questions.push(q), 'two-site\n') })
  t.equal(r.code, 0, r.stderr)
  t.match(questions[0], /Type the lab's name \(two-site\) to confirm/)
  t.same(readdirSync(dir), ['notes.txt'], 'only the user’s file is left')
  t.match(r.stdout, /^reset lab two-site in .*lab\d+\n/)
  t.match(r.stdout, /removed: .*data\/ \(array-a, host-a1: VM roles, cluster database, array volumes\).*events\.1\.jsonl; events\.2\.jsonl/)
  t.match(r.stdout, /logs\/ \(1 files\)/)
  t.match(r.stdout, /left alone \(not the lab's\): notes\.txt$/m)
})

t.test('--yes: no question; an emptied data dir is removed', async (t) => {
  const dir = labDir(false)
  const r = await hvlab(['reset', '--dir', dir, '--yes'], {
    ask: async () => {
      throw new Error('asked')
    },
  })
  t.equal(r.code, 0, r.stderr)
  t.notOk(existsSync(dir))
  t.match(r.stdout, /removed the empty data dir/)
})

t.test('a running lab is stopped first', async (t) => {
  const dir = labDir(false)
  const asked: string[] = []
  const server = createServer((req, res) => {
    asked.push(`${req.method} ${req.url}`)
    // The controller leaves: its control file goes with it.
    if (req.url === '/v1/down') unlinkSync(join(dir, 'control.json'))
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"ok":true}')
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const port = (server.address() as AddressInfo).port
  writeFileSync(join(dir, 'control.json'), JSON.stringify({ pid: process.pid, httpPort: port, peerPort: 1, topology: 'x', started_ms: 0 }))
  const r = await hvlab(['reset', '--dir', dir, '--yes'])
  t.equal(r.code, 0, r.stderr)
  t.same(asked, ['POST /v1/down'])
  t.match(r.stdout, /: stopped it\n/)
  t.notOk(existsSync(dir))
})
