/**
 * Links between organisations over mutual TLS (shared/transport/tls-link.ts), with real TLS
 * handshakes between two peers in this process: replica-dr2 of the organisation `hoster`
 * serves, host-a1 of the lab's own organisation dials. A good pair links and its frames
 * flow; a certificate of another CA, for another name, expired, or no TLS at all from the
 * other organisation, is refused HVLAB_E_CERT on both sides, and the server serves on.
 */
import t from 'tap'
import { issueAuthority, issueCertificate, type IssuedPem } from '../../shared/pki/certificate-issuer.js'
import type { TlsIdentity } from '../../shared/pki/lab-pki.js'
import { connect, capturingLogger, startServer, until, type TapTest } from './transport-helpers.js'

const DAY_MS = 86_400_000
const now_ms = Date.now()
const valid = { notBefore: new Date(now_ms - 60_000), notAfter: new Date(now_ms + DAY_MS) }
const expired = { notBefore: new Date(now_ms - 10 * DAY_MS), notAfter: new Date(now_ms - DAY_MS) }
const ORGANISATION: Record<string, string> = { 'replica-dr2': 'hoster', 'host-a1': 'lab', 'host-a2': 'lab' }

const labCa = await issueAuthority('hvlab lab ca', 'lab', valid)
const otherCa = await issueAuthority('hvlab lab ca', 'lab', valid)
const issue = (ca: IssuedPem, name: string, validity = valid): Promise<IssuedPem> =>
  issueCertificate(ca, { name, organisation: ORGANISATION[name]! }, validity)
const identity = (ca: IssuedPem, issued: IssuedPem): TlsIdentity => ({ ca: ca.cert, ...issued })
const certs = {
  server: await issue(labCa, 'replica-dr2'),
  client: await issue(labCa, 'host-a1'),
  otherName: await issue(labCa, 'host-a2'),
  otherCa: await issue(otherCa, 'host-a1'),
  expired: await issue(labCa, 'host-a1', expired),
  serverOtherCa: await issue(otherCa, 'replica-dr2'),
}

/** replica-dr2's peer server: it serves the lab's hosts over TLS, with the log lines it writes. */
async function replicaServer(tt: TapTest, cert = certs.server) {
  const { log, lines } = capturingLogger()
  const server = await startServer(tt, {
    name: 'replica-dr2',
    role: 'standalone',
    secret: 'hoster-secret',
    log,
    roleOf: (name) => (name.startsWith('host-') ? 'host' : undefined),
    tls: { identity: identity(labCa, cert), organisation: 'hoster', organisationOf: (name) => ORGANISATION[name] },
    onPeer: (c) => c.onRequest('ping', ({ message }) => ({ message: { t: 'pong', seq: message.seq, sent_ms: message.sent_ms } })),
  })
  const refusals = () => lines.filter((l) => l.msg === 'refusing connection').map((l) => `${String(l.code)} ${String(l.reason)}`)
  return { server, refusals }
}

/** host-a1 dialling replica-dr2 over TLS with `cert` (the lab CA trusted unless `trusted` says otherwise). */
const dial = (tt: TapTest, port: number, cert: IssuedPem, trusted = labCa) =>
  connect(tt, port, {
    name: 'host-a1',
    role: 'host',
    secret: 'not-used-over-tls',
    tls: { identity: identity(trusted, cert), peer: { name: 'replica-dr2', organisation: 'hoster' } },
  })

t.test('a good pair links over TLS, and frames flow both ways', async (tt) => {
  const { server, refusals } = await replicaServer(tt)
  const c = await dial(tt, server.port, certs.client)
  tt.equal(c.remoteName, 'replica-dr2')
  const reply = await c.request({ t: 'ping', seq: 7, sent_ms: 1 })
  tt.same(reply.message, { t: 'pong', seq: 7, sent_ms: 1 })
  tt.same(refusals(), [])
})

t.test('a client certificate the server must refuse: HVLAB_E_CERT on both sides, and the server serves on', async (tt) => {
  const { server, refusals } = await replicaServer(tt)
  const cases = [
    { what: 'issued by another CA', cert: certs.otherCa, says: /certificate of host-a1 was not issued by this lab's CA/ },
    { what: 'for another name', cert: certs.otherName, says: /claiming to be host-a1 is for host-a2, not for host-a1/ },
    { what: 'expired', cert: certs.expired, says: /certificate of host-a1 has expired/ },
  ]
  for (const c of cases) {
    await tt.rejects(dial(tt, server.port, c.cert), { code: 'HVLAB_E_AUTH', detail: 'HVLAB_E_CERT', message: c.says }, c.what)
    await until(`the refusal of the certificate ${c.what}`, () => refusals().some((r) => c.says.test(r)))
  }
  tt.equal(refusals().length, cases.length, 'each refused once, with HVLAB_E_CERT')
  tt.ok(refusals().every((r) => r.startsWith('HVLAB_E_CERT ')))
  tt.equal(server.connections.length, 0)
  await dial(tt, server.port, certs.client)
  tt.equal(server.connections.length, 1, 'a good peer still links')
})

t.test('a peer of another organisation without TLS is refused, even with the right secret', async (tt) => {
  const { server, refusals } = await replicaServer(tt)
  await tt.rejects(connect(tt, server.port, { name: 'host-a1', role: 'host', secret: 'hoster-secret' }), {
    detail: 'HVLAB_E_CERT',
    message: /host-a1 belongs to the organisation lab, replica-dr2 to hoster: a link between organisations runs over mutual TLS/,
  })
  await until('the refusal', () => refusals().length === 1)
  tt.match(refusals()[0], /^HVLAB_E_CERT /)
})

t.test('a server certificate the client must refuse: HVLAB_E_CERT, and the server logs the failed handshake', async (tt) => {
  const cases = [
    { what: 'issued by another CA', server: certs.serverOtherCa, says: /certificate of replica-dr2 at .* was not issued by this lab's CA/ },
    { what: 'for another name', server: certs.otherName, says: /certificate of the peer we dialled is for host-a2, not for replica-dr2/ },
  ]
  for (const c of cases) {
    const { server, refusals } = await replicaServer(tt, c.server)
    await tt.rejects(dial(tt, server.port, certs.client), { detail: 'HVLAB_E_CERT', message: c.says }, c.what)
    await until('the server to log the failed TLS handshake', () => refusals().length > 0)
    tt.match(refusals()[0], /^HVLAB_E_CERT TLS handshake failed/)
  }
})

t.test('closing the server ends its TLS links', async (tt) => {
  const { server } = await replicaServer(tt)
  const c = await dial(tt, server.port, certs.client)
  const closed = new Promise<void>((resolve) => c.once('close', () => resolve()))
  await server.close()
  await closed
  tt.notOk(c.isOpen, 'the dialler sees its link closed')
})
