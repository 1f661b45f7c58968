/**
 * Issuing the lab's X.509 certificates with @peculiar/x509 over Node's WebCrypto: a
 * self-signed certificate authority, and certificates it signs for the lab's processes.
 * Every key is ECDSA P-256 and every signature ECDSA with SHA-256. A process certificate
 * names the process twice, as its subject's CN and as a DNS name in its subjectAltName (what
 * TLS checks), and its organisation as the subject's O; it is good for TLS client and server
 * alike. No files here (lab-pki.ts keeps them); the validity period is the caller's.
 */
import 'reflect-metadata'
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto'
import * as x509 from '@peculiar/x509'

// Node's WebCrypto is the DOM's Crypto, whose type this project (no DOM lib) does not declare.
x509.cryptoProvider.set(webcrypto as never)

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

/** A certificate and its private key (PKCS #8), PEM. */
export interface IssuedPem {
  cert: string
  key: string
}

export interface Validity {
  notBefore: Date
  notAfter: Date
}

/** Who a process certificate is for: a topology name, and the organisation that runs it. */
export interface CertificateSubject {
  name: string
  organisation: string
}

/** Topology names (field.name()) need no escaping in a distinguished name; the check keeps it so. */
function distinguishedName(cn: string, o: string): string {
  for (const v of [cn, o]) if (!/^[a-z0-9][a-z0-9._ -]{0,62}$/.test(v)) throw new Error(`${v} is not a name a certificate can carry`)
  return `CN=${cn}, O=${o}`
}

/** A positive serial number of 16 random bytes, as RFC 5280 asks (unique, at most 20 bytes). */
const serialNumber = (): string => '01' + randomBytes(15).toString('hex')

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key))
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString()
}

/** A new self-signed certificate authority, `CN=<label>, O=<organisation>`, that may sign end certificates only. */
export async function issueAuthority(label: string, organisation: string, validity: Validity): Promise<IssuedPem> {
  const keys = await newKeys()
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: distinguishedName(label, organisation),
    ...validity,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) }
}

/** A new certificate for `subject`, signed by `authority`. */
export async function issueCertificate(authority: IssuedPem, subject: CertificateSubject, validity: Validity): Promise<IssuedPem> {
  const caCert = new x509.X509Certificate(authority.cert)
  const caDer = createPrivateKey(authority.key).export({ format: 'der', type: 'pkcs8' })
  const caKey = await webcrypto.subtle.importKey('pkcs8', caDer, ALGORITHM, false, ['sign'])
  const keys = await newKeys()
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: distinguishedName(subject.name, subject.organisation),
    issuer: caCert.subject,
    ...validity,
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: subject.name }]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  })
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) }
}
