/**
 * Roles are proved and checked (reliability review #3, "related weakness"): an array's
 * peer server, set up as a lab process sets it up (its PeerMesh from the default
 * topology), refuses with HVLAB_E_AUTH a peer claiming a role the topology does not give
 * it, or a name that is not its peer, and logs why; a hello whose role is not the one its
 * proof was made for fails the proof; a dialler refuses a server of another role.
 */
import t from 'tap'
import { PROTOCOL_VERSION } from '../../shared/protocol/messages.js'
import { LIMITS_DEFAULT, dials, loadTopology, peersOf } from '../../shared/topology.js'
import { setRefusalLogRate } from '../../shared/transport/refusal-log.js'
import { computeProof } from '../../shared/transport/handshake.js'
import { PeerMesh } from '../../shared/transport/peer-mesh.js'
import { silentLogger } from '../../shared/log.js'
import {
  SECRET,
  capturingLogger,
  connect,
  nextMessage,
  rawSocket,
  recordUntilClosed,
  sendMessage,
  startServer,
  type TapTest,
} from './transport-helpers.js'

/** array-a's peer server with the default lab's topology behind it. */
async function arrayA(tt: TapTest) {
  const topology = loadTopology('topologies/two-site.json')
  const mesh = new PeerMesh({
    self: { name: 'array-a', role: 'array' },
    secret: SECRET,
    peers: peersOf(topology, 'array-a'),
    dials,
    log: silentLogger(),
  })
  tt.teardown(() => mesh.stop())
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, {
    name: 'array-a',
    role: 'array',
    log,
    roleOf: (name) => mesh.roleOf(name),
    admit: (remote) => mesh.admit(remote),
  })
  return { server, lines }
}

t.test('a peer claiming a role the topology does not give it is refused with HVLAB_E_AUTH', async (tt) => {
  // The refusal lines' rate limit is one per process, and a batch runs other test files in this process:
  // their refusals in the same second would hold some of these back (test/batches/run-batch.ts).
  setRefusalLogRate(LIMITS_DEFAULT.refusal_logs_per_s)
  const { server, lines } = await arrayA(tt)
  await tt.rejects(
    connect(tt, server.port, { name: 'host-a1', role: 'array' }),
    { code: 'HVLAB_E_AUTH', message: /host-a1 claims the role array; in this lab its role is host/ },
    'a host claiming to be an array',
  )
  await tt.rejects(
    connect(tt, server.port, { name: 'array-b', role: 'host' }),
    { code: 'HVLAB_E_AUTH', message: /claims the role host/ },
    'an array claiming to be a host (for the storage-admin handlers)',
  )
  await tt.rejects(
    connect(tt, server.port, { name: 'host-a1', role: 'controller' }),
    { code: 'HVLAB_E_AUTH' },
    'a host claiming to be the controller',
  )
  await tt.rejects(
    connect(tt, server.port, { name: 'witness', role: 'witness' }),
    { code: 'HVLAB_E_AUTH', message: /not a process array-a serves/ },
    'a process that is not a peer of the array',
  )
  await tt.rejects(
    connect(tt, server.port, { name: 'intruder', role: 'host' }),
    { code: 'HVLAB_E_AUTH', message: /not a process array-a serves/ },
    'a name unknown to the topology',
  )
  const refusals = lines.filter((l) => l.msg === 'refusing connection' && l.code === 'HVLAB_E_AUTH')
  tt.equal(refusals.length, 5, 'each refusal is logged with its reason')
  tt.match(refusals[0], { reason: /host-a1 claims the role array/ })
  tt.equal(server.connections.length, 0, 'none of them is connected')

  const host = await connect(tt, server.port, { name: 'host-a1', role: 'host' })
  const partner = await connect(tt, server.port, { name: 'array-b', role: 'array' })
  tt.same([host.remoteRole, partner.remoteRole], ['array', 'array'])
  tt.same(
    server.connections.map((c) => `${c.remoteName}:${c.remoteRole}`).sort(),
    ['array-b:array', 'host-a1:host'],
    'peers in their own roles are served',
  )
})

t.test('a hello whose role differs from the one its proof covers fails the proof', async (tt) => {
  const { server } = await arrayA(tt)
  const ws = rawSocket(tt, server.port)
  const closed = recordUntilClosed(ws)
  const challenge = await nextMessage(ws)
  if (challenge.t !== 'challenge') throw new Error(`expected a challenge, got ${challenge.t}`)
  // A proof made as array-b the array, sent as array-b the host (a relay rewriting the role).
  const nonce = '5'.repeat(32)
  const proof = computeProof(SECRET, {
    side: 'client',
    protocolVersion: PROTOCOL_VERSION,
    theirNonce: challenge.nonce,
    ourNonce: nonce,
    ourName: 'array-b',
    theirName: 'array-a',
    ourRole: 'array',
    theirRole: 'array',
  })
  sendMessage(ws, { t: 'hello', protocolVersion: PROTOCOL_VERSION, name: 'array-b', role: 'host', nonce, proof })
  const { messages } = await closed
  tt.match(messages.at(-1), { t: 'goodbye', code: 'HVLAB_E_AUTH', reason: /did not prove/ })
})

t.test('a dialler refuses a server whose role is not the one it expects', async (tt) => {
  const { server } = await arrayA(tt)
  await tt.rejects(connect(tt, server.port, { name: 'host-a1', expectName: 'array-a', expectRole: 'host' }), {
    code: 'HVLAB_E_AUTH',
    message: /expected the role host .* array-a says its role is array/,
  })
  const c = await connect(tt, server.port, { name: 'host-a1', expectName: 'array-a', expectRole: 'array' })
  tt.equal(c.remoteRole, 'array', 'the expected role is accepted')
})
