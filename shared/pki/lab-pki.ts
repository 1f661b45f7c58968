/**
 * The lab's certificate authority and its processes' certificates on disk (lab-layout.ts
 * `pki/`). The controller makes them at each `hvlab up`: the CA once (again only when its
 * files are unreadable, do not match or are near their end), a new certificate for every
 * process each time. A process reads back its own and the CA's (readTlsIdentity). The
 * private keys are mode 0600 in a 0700 dir, like the lab's secret.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { HvlabError, describeError } from '../errors.js'
import type { LabLayout } from '../lab-layout.js'
import { LAB_ORGANISATION } from '../organisation.js'
import { issueAuthority, issueCertificate, type CertificateSubject, type IssuedPem, type Validity } from './certificate-issuer.js'

const DAY_MS = 86_400_000
export const CA_VALIDITY_DAYS = 3650
/** A process certificate is issued anew at every `hvlab up`: a month covers any lab run. */
export const PROCESS_CERT_VALIDITY_DAYS = 30
/** A CA with less left than this is replaced, so that no certificate outlives its issuer. */
const CA_RENEW_BEFORE_DAYS = PROCESS_CERT_VALIDITY_DAYS + 1
/** Certificates start a minute back, for the clocks of the lab's machines. */
const NOT_BEFORE_SLACK_MS = 60_000
const PRIVATE_DIR_MODE = 0o700
const KEY_FILE_MODE = 0o600

/** What a process needs for mutual TLS, PEM: the lab CA's certificate, its own certificate and key. */
export interface TlsIdentity {
  ca: string
  cert: string
  key: string
}

const validityFrom = (now_ms: number, days: number): Validity => ({
  notBefore: new Date(now_ms - NOT_BEFORE_SLACK_MS),
  notAfter: new Date(now_ms + days * DAY_MS),
})

function writePair(certFile: string, keyFile: string, issued: IssuedPem): void {
  mkdirSync(dirname(certFile), { recursive: true, mode: PRIVATE_DIR_MODE })
  writeFileSync(keyFile, issued.key, { mode: KEY_FILE_MODE })
  chmodSync(keyFile, KEY_FILE_MODE)
  writeFileSync(certFile, issued.cert)
}

/** The CA on disk when it is whole, its key matches and it has time left; undefined otherwise. */
function usableAuthority(layout: LabLayout, now_ms: number): IssuedPem | undefined {
  try {
    const issued = { cert: readFileSync(layout.caCert, 'utf8'), key: readFileSync(layout.caKey, 'utf8') }
    const cert = new X509Certificate(issued.cert)
    const renewAt_ms = Date.parse(cert.validTo) - CA_RENEW_BEFORE_DAYS * DAY_MS
    if (!cert.ca || !cert.checkPrivateKey(createPrivateKey(issued.key)) || !(now_ms < renewAt_ms)) return undefined
    return issued
  } catch {
    return undefined
  }
}

/**
 * Makes sure the lab has a usable CA (a new one otherwise) and issues every process in
 * `processes` a new certificate. Returns whether the CA is new.
 */
export async function prepareLabPki(layout: LabLayout, processes: readonly CertificateSubject[], now_ms = Date.now()): Promise<boolean> {
  mkdirSync(layout.pki, { recursive: true, mode: PRIVATE_DIR_MODE })
  chmodSync(layout.pki, PRIVATE_DIR_MODE)
  let authority = usableAuthority(layout, now_ms)
  const fresh = authority === undefined
  if (!authority) {
    authority = await issueAuthority('hvlab lab ca', LAB_ORGANISATION, validityFrom(now_ms, CA_VALIDITY_DAYS))
    writePair(layout.caCert, layout.caKey, authority)
  }
  const ca = authority
  const issued = await Promise.all(processes.map((p) => issueCertificate(ca, p, validityFrom(now_ms, PROCESS_CERT_VALIDITY_DAYS))))
  processes.forEach((p, i) => writePair(layout.processCert(p.name), layout.processKey(p.name), issued[i]!))
  return fresh
}

/** Process `name`'s TLS identity from the lab dir, each file parsed; HVLAB_E_CERT when one is missing or not what it should be. */
export function readTlsIdentity(layout: LabLayout, name: string): TlsIdentity {
  const files = { ca: layout.caCert, cert: layout.processCert(name), key: layout.processKey(name) }
  try {
    const identity = { ca: readFileSync(files.ca, 'utf8'), cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8') }
    const cert = new X509Certificate(identity.cert)
    if (!new X509Certificate(identity.ca).ca) throw new Error(`${files.ca} is not a CA certificate`)
    if (!cert.checkPrivateKey(createPrivateKey(identity.key))) throw new Error(`${files.key} is not the key of ${files.cert}`)
    return identity
  } catch (e) {
    throw new HvlabError(
      'HVLAB_E_CERT',
      `cannot use ${name}'s certificate in ${layout.pki}: ${describeError(e)}; \`hvlab up\` issues the lab's certificates again`,
    )
  }
}
