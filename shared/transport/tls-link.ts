/**
 * Links between organisations (a hosting provider's DR host and the lab's hosts): mutual
 * TLS, each side's certificate issued by the lab's CA (shared/pki/) and checked by the
 * other for the CA, its dates, and the name and organisation the topology gives the peer.
 * The lab's secret is never used on them: the handshake's proofs and the frames' tags are
 * keyed with the TLS session's exported keying material (RFC 5705), which only the two
 * ends of that session share, so the handshake and PeerConnection are the same code as on
 * the lab's own links. Links inside one organisation do not come here.
 */
import { X509Certificate } from 'node:crypto'
import type { Server as HttpServer } from 'node:http'
import type { Socket } from 'node:net'
import {
  createServer as createTlsServer,
  TLSSocket,
  type ConnectionOptions,
  type PeerCertificate,
  type Server as TlsServer,
} from 'node:tls'
import { HvlabError } from '../errors.js'
import type { TlsIdentity } from '../pki/lab-pki.js'

/** The first byte of a TLS record that carries a handshake message (a ClientHello). */
const TLS_HANDSHAKE_RECORD = 0x16
const EXPORTER_LABEL = 'EXPORTER-hvlab-link-secret'
const EXPORTED_BYTES = 32
/** What to do about a certificate this side refused, for every message that says so. */
export const CERT_ADVICE = "each process's certificate must be one the lab's CA issued (`hvlab up` issues them in <data dir>/pki/)"

/** Who the peer's certificate must name: the process and the organisation the topology gives it. */
export interface ExpectedPeer {
  name: string
  organisation: string
}

/** What OpenSSL's verification codes mean here, in words; other codes are named as they are. */
const VERIFY_ERRORS: Readonly<Record<string, string>> = {
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "was not issued by this lab's CA",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "was not issued by this lab's CA",
  UNABLE_TO_GET_ISSUER_CERT: "was not issued by this lab's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "was not issued by this lab's CA",
  DEPTH_ZERO_SELF_SIGNED_CERT: "is self-signed, not issued by this lab's CA",
  CERT_SIGNATURE_FAILURE: "does not carry a valid signature of this lab's CA",
}

/** The words for an OpenSSL verification code, or undefined when `code` is not one. */
export function verifyErrorText(code: unknown): string | undefined {
  if (typeof code !== 'string') return undefined
  return VERIFY_ERRORS[code] ?? (/^(CERT_|UNABLE_TO_|.*_CERT$|.*_CERT_)/.test(code) ? `failed verification (${code})` : undefined)
}

/** The value of `field` (CN, O) in a certificate's subject as Node prints it, one `F=v` a line. */
function subjectField(cert: X509Certificate, field: string): string | undefined {
  const line = cert.subject.split('\n').find((l) => l.startsWith(`${field}=`))
  return line?.slice(field.length + 1)
}

/** Why `cert` is not `expected`'s (its subjectAltName, its O), or undefined when it is. Pure. */
export function identityProblem(cert: X509Certificate, expected: ExpectedPeer): string | undefined {
  const organisation = subjectField(cert, 'O')
  if (cert.checkHost(expected.name, { subject: 'never' }) === undefined)
    return `is for ${subjectField(cert, 'CN') ?? 'another name'}, not for ${expected.name}`
  if (organisation !== expected.organisation)
    return `is for the organisation ${organisation ?? '(none)'}; in this lab ${expected.name} belongs to ${expected.organisation}`
  return undefined
}

/** The server's check of a client's certificate after the TLS handshake: why it is refused, or undefined. */
export function clientCertificateProblem(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate()
  if (!cert) return 'presented no certificate'
  if (!socket.authorized) return verifyErrorText(socket.authorizationError) ?? `failed verification (${String(socket.authorizationError)})`
  return undefined
}

/** The name in a verified client certificate (its CN; identityProblem checks it against the subjectAltName). */
export function certificateName(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate()
  return cert ? subjectField(cert, 'CN') : undefined
}

/** The secret the two ends of one TLS session share and no one else: it keys the link's proofs and frame tags. */
export function sessionSecret(socket: TLSSocket): string {
  return socket.exportKeyingMaterial(EXPORTED_BYTES, EXPORTER_LABEL, Buffer.alloc(0)).toString('hex')
}

/** The client's TLS options: our certificate, the lab CA as the only one trusted, and `expected` as the only peer. */
export function clientTlsOptions(identity: TlsIdentity, expected: ExpectedPeer): ConnectionOptions {
  return {
    ca: identity.ca,
    cert: identity.cert,
    key: identity.key,
    servername: expected.name,
    rejectUnauthorized: true,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const problem = identityProblem(new X509Certificate(cert.raw), expected)
      return problem ? new HvlabError('HVLAB_E_CERT', `the certificate of the peer we dialled ${problem}; ${CERT_ADVICE}`) : undefined
    },
  }
}

/**
 * The TLS side of a peer listener, on the listener's one port: a connection that opens with
 * a TLS handshake record goes to a TLS server, any other (a WebSocket upgrade opens with
 * "GET") to `http` as it is. The TLS server asks every client for its certificate but
 * refuses none itself: the peer server refuses a bad one after the TLS handshake, with a
 * goodbye that says why (a TLS alert could not), before it sends anything else.
 */
export class PeerTlsRouter {
  private readonly tls: TlsServer
  /** The TCP sockets handed to TLS, by their remote address and port (unique on one listener while open). */
  private readonly raw = new Map<string, Socket>()

  constructor(
    identity: TlsIdentity,
    private readonly http: HttpServer,
    onHandshakeError: (socket: Socket, reason: string) => void,
  ) {
    this.tls = createTlsServer({ ca: identity.ca, cert: identity.cert, key: identity.key, requestCert: true, rejectUnauthorized: false })
    this.tls.on('secureConnection', (socket: TLSSocket) => http.emit('connection', socket))
    this.tls.on('tlsClientError', (e: Error, socket: TLSSocket) => onHandshakeError(this.rawOf(socket), e.message))
  }

  /** A new TCP connection: to TLS or to HTTP, by its first byte. */
  route(socket: Socket): void {
    socket.once('readable', () => {
      const first = socket.read(1) as Buffer | null
      if (first === null) return
      socket.unshift(first)
      if (first[0] !== TLS_HANDSHAKE_RECORD) {
        this.http.emit('connection', socket)
        return
      }
      const key = endpointKey(socket)
      this.raw.set(key, socket)
      socket.once('close', () => this.raw.get(key) === socket && this.raw.delete(key))
      this.tls.emit('connection', socket)
    })
  }

  /** The TCP socket under `socket` (itself when it is not a TLS one). */
  rawOf(socket: Socket): Socket {
    return (socket instanceof TLSSocket && this.raw.get(endpointKey(socket))) || socket
  }
}

const endpointKey = (socket: Socket): string => `${socket.remoteAddress}|${socket.remotePort}`
