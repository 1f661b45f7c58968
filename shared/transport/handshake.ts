/**
 * Challenge–response proof of the lab's secret, both ways. Pure: HMAC-SHA256 over the
 * two nonces, both names and both roles, so a proof cannot be replayed on another
 * connection, reflected back at its sender, or kept while the role it was made for changes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface ProofInput {
  side: 'client' | 'server'
  protocolVersion: number
  /** The nonce the prover received (the verifier's), then the prover's own. */
  theirNonce: string
  ourNonce: string
  ourName: string
  theirName: string
  ourRole: string
  theirRole: string
}

export function computeProof(secret: string, p: ProofInput): string {
  return createHmac('sha256', secret)
    .update(['hvlab', p.side, p.protocolVersion, p.theirNonce, p.ourNonce, p.ourName, p.theirName, p.ourRole, p.theirRole].join('|'))
    .digest('hex')
}

export function verifyProof(secret: string, p: ProofInput, proof: string): boolean {
  const expected = Buffer.from(computeProof(secret, p), 'hex')
  const given = Buffer.from(proof, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}
