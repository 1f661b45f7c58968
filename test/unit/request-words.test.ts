/**
 * Wire message types never reach the user: a request the CLI built with a bad field is a
 * usage error naming the argument ("the VM name …"), before anything is sent; a process of
 * the wrong kind (an array for `cluster force-quorum`) is named with the kind the command
 * takes and the lab's processes of that kind. A fake control endpoint plays the controller.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { checkOutgoingRequest, wrongProcessError } from '../../scripts/cli/request-words.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'

const LAB = [
  { name: 'host-a1', role: 'host' as const },
  { name: 'host-a2', role: 'host' as const },
  { name: 'witness', role: 'witness' as const },
  { name: 'array-a', role: 'array' as const },
  { name: 'replica-dr1', role: 'standalone' as const },
]

t.test('a bad field of a request is the argument it came from', async (t) => {
  t.throws(
    () =>
      checkOutgoingRequest({
        t: 'role-command-request',
        command: { op: 'create', spec: { name: 'Web 1', memory_mib: 64, preferred_owners: [], storage: { kind: 'local' } } },
        forwarded: false,
      } as never),
    { code: 'HVLAB_E_USAGE', message: /^the VM name "Web 1" is not valid: a name is 1–63 of a-z 0-9/ },
  )
  try {
    checkOutgoingRequest({ t: 'vm-inspect-request', vm: '-x' } as never)
    t.fail('refused')
  } catch (e) {
    t.match((e as Error).message, /^the VM name "-x" is not valid: /)
    t.notMatch((e as Error).message, /request|message/, 'no wire words')
  }
  t.doesNotThrow(() => checkOutgoingRequest({ t: 'vm-inspect-request', vm: 'web1' }), 'a good one passes')
})

t.test('a process of the wrong kind: the command and what it takes', async (t) => {
  const e = wrongProcessError('array-a', 'cluster-force-quorum-request', LAB)
  t.equal(e?.code, 'HVLAB_E_USAGE')
  t.equal(e?.message, 'array-a is an array, not a host (a cluster node); `hvlab cluster force-quorum` takes a host: host-a1, host-a2')
  t.equal(
    wrongProcessError('host-a1', 'rc-status-request', LAB)?.message,
    'host-a1 is a host, not an array; `hvlab rcopy status` takes an array: array-a',
  )
  t.equal(
    wrongProcessError('replica-dr1', 'role-list-request', LAB)?.message,
    'replica-dr1 is a standalone Hyper-V host, not a host (a cluster node); `hvlab vm list` takes a host: host-a1, host-a2',
    'a standalone host is named as a Hyper-V host outside the cluster, and is not offered as a taker',
  )
  t.match(wrongProcessError('x', 'vm-inspect-request', undefined)?.message, /^x does not answer it, not a host/)
})

t.test('`hvlab cluster force-quorum array-a`: exit 2 in the user’s words', async (t) => {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.url === '/v1/status') return res.end(JSON.stringify({ processes: LAB }))
    // What the controller answers when the process does not answer that request (lab-controller.ts relay).
    res.statusCode = 400
    res.end(
      JSON.stringify({
        error: {
          code: 'HVLAB_E_USAGE',
          detail: 'HVLAB_E_WRONG_PROCESS',
          message: 'array-a refused cluster-force-quorum-request: array-a: cluster-force-quorum-request is not a request this peer answers',
        },
      }),
    )
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-request-words-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'secret'), 's\n')
  const port = (server.address() as AddressInfo).port
  writeFileSync(join(dir, 'control.json'), JSON.stringify({ pid: process.pid, httpPort: port, peerPort: 1, topology: 'x', started_ms: 0 }))
  const err: string[] = []
  const io: CliIo = { stdout: () => {}, stderr: (s) => void err.push(s), isTTY: false }
  t.equal(await runHvlab(['cluster', 'force-quorum', 'array-a', '--dir', dir], io), 2)
  t.match(
    err.join(''),
    /^hvlab: cannot force quorum on array-a: array-a is an array, not a host \(a cluster node\); `hvlab cluster force-quorum` takes a host: host-a1, host-a2\n$/,
  )
  t.notMatch(err.join(''), /force-quorum-request/)
})
