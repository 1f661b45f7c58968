/**
 * `hvlab cluster force-quorum` while the cluster holds quorum: without a terminal it needs
 * --yes (exit 2, naming it, and nothing is sent); on a terminal it asks, and only "yes" goes
 * on; the forced epoch is printed as GENERATION/EPOCH. A fake control endpoint plays the
 * controller and the host.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { EPOCHS_PER_GENERATION } from '../../shared/consensus/epoch-generation.js'
import { type CliIo, runHvlab } from '../../scripts/cli/run-hvlab.js'
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'

function hostStatus(forced: boolean): ClusterStatus {
  return {
    node: 'host-a1',
    model: 'node-majority',
    dynamic_quorum: true,
    dynamic_witness: true,
    epoch: forced ? EPOCHS_PER_GENERATION : 7,
    db_epoch: 3,
    coordinator: 'host-a1',
    is_coordinator: true,
    forced,
    holds_lease: true,
    lease_until_ms: Date.now() + 1000,
    members: ['host-a1'],
    voters: ['host-a1'],
    witness: null,
    votes_total: 1,
    votes_present: 1,
    votes_needed: 1,
    nodes: [{ name: 'host-a1', site: 'site-a', state: 'Up', voter: true, node_weight: 1, dynamic_weight: 1 }],
  }
}

/** A fake lab with one up host that holds quorum; counts force requests. */
async function fakeLab(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; forced: () => number }> {
  let forces = 0
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json')
    if (req.url === '/v1/status') return res.end(JSON.stringify({ processes: [{ name: 'host-a1', role: 'host', state: 'up' }] }))
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      const t = (JSON.parse(body) as { message: { t: string } }).message.t
      if (t === 'cluster-force-quorum-request') forces++
      const message = t === 'cluster-status-request' ? { t: 'cluster-status-reply', status: hostStatus(forces > 0) } : { t: 'ok' }
      res.end(JSON.stringify({ message }))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-force-quorum-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'secret'), 's\n')
  const port = (server.address() as AddressInfo).port
  writeFileSync(join(dir, 'control.json'), JSON.stringify({ pid: process.pid, httpPort: port, peerPort: 1, topology: 'x', started_ms: 0 }))
  return { dir, forced: () => forces }
}

function io(answer?: string): { io: CliIo; out: () => string; err: () => string; asked: string[] } {
  const out: string[] = []
  const err: string[] = []
  const asked: string[] = []
  const ask = answer === undefined ? {} : { ask: async (q: string) => (asked.push(q), answer) }
  return {
    io: { stdout: (s) => void out.push(s), stderr: (s) => void err.push(s), isTTY: true, ...ask },
    out: () => out.join(''),
    err: () => err.join(''),
    asked,
  }
}

t.test('no terminal, no --yes: exit 2 naming --yes, nothing forced', async (t) => {
  const lab = await fakeLab(t)
  const c = io()
  t.equal(await runHvlab(['cluster', 'force-quorum', 'host-a1', '--dir', lab.dir], c.io), 2)
  t.match(c.err(), /the cluster holds quorum now \(held by host-a1\).*add --yes to force it anyway/)
  t.equal(lab.forced(), 0)
})

t.test('on a terminal: anything but yes leaves it; yes forces and prints the epoch as generation/epoch', async (t) => {
  const lab = await fakeLab(t)
  const no = io('no')
  t.equal(await runHvlab(['cluster', 'force-quorum', 'host-a1', '--dir', lab.dir], no.io), 1)
  t.match(no.asked[0], /Force quorum on host-a1\?/)
  t.equal(lab.forced(), 0, 'not confirmed: nothing sent')
  const yes = io('yes')
  t.equal(await runHvlab(['cluster', 'force-quorum', 'host-a1', '--dir', lab.dir], yes.io), 0)
  t.equal(lab.forced(), 1)
  t.match(yes.out(), /^forced quorum on host-a1 in epoch 1\/0 \(FORCED\): /)
})

t.test('--yes: no question', async (t) => {
  const lab = await fakeLab(t)
  const c = io('no')
  t.equal(await runHvlab(['cluster', 'force-quorum', 'host-a1', '--yes', '--dir', lab.dir], c.io), 0)
  t.same(c.asked, [])
  t.equal(lab.forced(), 1)
})
