/**
 * The lab's certificates (shared/pki/): the controller's start issues a CA and one
 * certificate per process, its name in the subjectAltName and CN and its organisation in O,
 * signed by the CA; keys are mode 0600, and another organisation's processes get a secret
 * of their own. The CA is kept across starts (and made again when its files are spoilt),
 * the process certificates are new each time. A process's identity read back is checked;
 * a certificate is accepted for its own name and organisation only.
 */
import t from 'tap'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { LabController } from '../../scripts/controller/lab-controller.js'
import { labLayout } from '../../shared/lab-layout.js'
import { silentLogger } from '../../shared/log.js'
import { prepareLabPki, readTlsIdentity, PROCESS_CERT_VALIDITY_DAYS } from '../../shared/pki/lab-pki.js'
import { DEFAULT_TOPOLOGY_FILE, loadTopology, processesWithForeignPeers } from '../../shared/topology.js'
import { identityProblem, verifyErrorText } from '../../shared/transport/tls-link.js'

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0]

const FIXTURE = fileURLToPath(new URL('../lab/fixtures/two-site-dr-fast.json', import.meta.url))

function scratch(tt: TapTest): string {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-pki-'))
  tt.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const modeOf = (path: string): number => statSync(path).mode & 0o777
const certOf = (path: string): X509Certificate => new X509Certificate(readFileSync(path))

t.test(
  "the controller's start issues the CA and a certificate to every process with a peer of another organisation, keys 0600",
  async (tt) => {
    const dir = scratch(tt)
    const controller = await LabController.create({ dir, topologyFile: FIXTURE, log: silentLogger() })
    tt.teardown(() => controller.down())
    const layout = labLayout(dir)
    const ca = certOf(layout.caCert)
    tt.ok(ca.ca, 'the CA certificate may sign')
    tt.equal(modeOf(layout.caKey), 0o600, 'the CA key')
    tt.equal(modeOf(layout.pki), 0o700, 'pki/')
    const topology = loadTopology(FIXTURE)
    const certified = processesWithForeignPeers(topology)
    tt.same(
      certified.map((p) => p.name),
      ['host-a1', 'host-a2', 'host-b1', 'host-b2', 'replica-dr1', 'replica-dr2'],
      "replica-dr2 (a hoster's) and its peers; not the witness or the arrays",
    )
    tt.notOk(existsSync(layout.processCert('witness')), 'the witness has no peer of another organisation')
    for (const p of certified) {
      const cert = certOf(layout.processCert(p.name))
      tt.equal(cert.subject, `CN=${p.name}\nO=${p.organisation}`, `${p.name}: CN and O`)
      tt.equal(cert.subjectAltName, `DNS:${p.name}`, `${p.name}: its name for TLS`)
      tt.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), `${p.name}: signed by the lab CA`)
      tt.notOk(cert.ca, `${p.name}: may not sign`)
      tt.equal(modeOf(layout.processKey(p.name)), 0o600, `${p.name}: key`)
    }
    tt.equal(certOf(layout.processCert('replica-dr2')).subject, 'CN=replica-dr2\nO=hoster')
    const hoster = readFileSync(layout.secretOf('hoster'), 'utf8').trim()
    tt.match(hoster, /^[0-9a-f]{64}$/)
    tt.not(hoster, readFileSync(layout.secret, 'utf8').trim(), "the other organisation's secret is not the lab's")
    tt.equal(modeOf(layout.secretOf('hoster')), 0o600)
  },
)

t.test('a lab of one organisation issues no certificate and keeps no other secret', async (tt) => {
  const dir = scratch(tt)
  const controller = await LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log: silentLogger() })
  tt.teardown(() => controller.down())
  tt.notOk(existsSync(labLayout(dir).pki), 'no pki/')
})

t.test('the CA is kept across starts and made again when spoilt; process certificates are new each time', async (tt) => {
  const layout = labLayout(scratch(tt))
  const subjects = [{ name: 'host-a1', organisation: 'lab' }]
  const now_ms = Date.now()
  tt.equal(await prepareLabPki(layout, subjects, now_ms), true, 'a new CA')
  const first = { ca: readFileSync(layout.caCert, 'utf8'), host: readFileSync(layout.processCert('host-a1'), 'utf8') }
  tt.equal(await prepareLabPki(layout, subjects, now_ms), false, 'the same CA')
  tt.equal(readFileSync(layout.caCert, 'utf8'), first.ca)
  tt.not(readFileSync(layout.processCert('host-a1'), 'utf8'), first.host, 'a new process certificate')
  const host = certOf(layout.processCert('host-a1'))
  tt.equal(Date.parse(host.validTo) - Date.parse(host.validFrom), PROCESS_CERT_VALIDITY_DAYS * 86_400_000 + 60_000)
  writeFileSync(layout.caKey, readFileSync(layout.processKey('host-a1')))
  tt.equal(await prepareLabPki(layout, subjects, now_ms), true, 'a CA key that is not the CA certificate’s: a new CA')
  tt.not(readFileSync(layout.caCert, 'utf8'), first.ca)
  tt.ok(certOf(layout.processCert('host-a1')).checkIssued(certOf(layout.caCert)), 'issued by the new CA')
})

t.test("a process's identity is read back checked: a missing or mismatched file is HVLAB_E_CERT", async (tt) => {
  const layout = labLayout(scratch(tt))
  await prepareLabPki(layout, [
    { name: 'host-a1', organisation: 'lab' },
    { name: 'host-a2', organisation: 'lab' },
  ])
  const identity = readTlsIdentity(layout, 'host-a1')
  tt.equal(identity.cert, readFileSync(layout.processCert('host-a1'), 'utf8'))
  tt.throws(() => readTlsIdentity(layout, 'host-b1'), { detail: 'HVLAB_E_CERT', message: /cannot use host-b1's certificate/ })
  writeFileSync(layout.processKey('host-a1'), readFileSync(layout.processKey('host-a2')))
  tt.throws(() => readTlsIdentity(layout, 'host-a1'), { detail: 'HVLAB_E_CERT', message: /is not the key of/ })
})

t.test('a certificate is accepted for its own name and organisation only', async (tt) => {
  const layout = labLayout(scratch(tt))
  await prepareLabPki(layout, [{ name: 'replica-dr2', organisation: 'hoster' }])
  const cert = certOf(layout.processCert('replica-dr2'))
  tt.equal(identityProblem(cert, { name: 'replica-dr2', organisation: 'hoster' }), undefined)
  tt.equal(identityProblem(cert, { name: 'replica-dr1', organisation: 'hoster' }), 'is for replica-dr2, not for replica-dr1')
  tt.equal(
    identityProblem(cert, { name: 'replica-dr2', organisation: 'lab' }),
    'is for the organisation hoster; in this lab replica-dr2 belongs to lab',
  )
  tt.equal(verifyErrorText('CERT_HAS_EXPIRED'), 'has expired')
  tt.equal(verifyErrorText('SELF_SIGNED_CERT_IN_CHAIN'), "was not issued by this lab's CA")
  tt.equal(verifyErrorText('ECONNRESET'), undefined, 'not a certificate problem')
})
