/**
 * The connections a lab process keeps to the peers the topology gives it: it dials the
 * peers whose names sort after its own and accepts the others, keeps one connection per
 * peer (a newer one replaces an older one: the peer restarted), follows the directory
 * the controller pushes (restarted processes listen on new ports), and obeys injected
 * partitions (blocked peers are cut and neither dialled nor admitted) and link faults
 * (`setLinkFaults`: shaping of what this process sends a peer, a one-way partition).
 * A peer of another organisation is dialled over mutual TLS (tls-link.ts), every other on
 * the lab's secret.
 *
 * Events: 'peer-up' (connection), 'peer-down' (name, reason).
 */
import { EventEmitter } from 'node:events'
import type { Clock } from '../clock.js'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics.js'
import type { Role } from '../protocol/runtime-messages.js'
import { HvlabError } from '../errors.js'
import { LAB_ORGANISATION } from '../organisation.js'
import type { Endpoint } from './peer-client.js'
import { LINK_SHAPE_CLEAR, type LinkShape } from './link-shaper.js'
import type { PeerConnection, TransportLimits } from './peer-connection.js'
import { PeerLink } from './peer-link.js'
import type { TlsIdentity } from '../pki/lab-pki.js'

/** What the lab does to the link with one peer, as this process sees it. */
export interface LinkFault {
  peer: string
  /** Shaping of the frames this process sends the peer. */
  shape: LinkShape
  /** The peer's frames do not reach this process (a one-way partition towards it). */
  deaf: boolean
  /** A one-way partition either way: an open connection lives on, no new one can be made. */
  no_new_connections: boolean
}

export interface MeshPeer {
  name: string
  role: Role
  site: string
  /** Who runs it (topology.ts LAB_ORGANISATION when not given). */
  organisation?: string
}

export interface PeerMeshOptions {
  /** This process; its organisation is LAB_ORGANISATION when not given. */
  self: { name: string; role: Role; organisation?: string }
  /** Our organisation's secret, proved on the links with its processes. */
  secret: string
  /** This process's certificate, for the links with processes of other organisations (required when it has any). */
  tls?: TlsIdentity
  /** The peers this process talks to, from the topology. */
  peers: MeshPeer[]
  /** Whether we dial `peer` (the other side dials us otherwise). */
  dials: (self: string, peer: string) => boolean
  log: Logger
  metrics?: Metrics
  limits?: Partial<TransportLimits>
  /** What the links' backoff and the connections' liveness probe and request timeouts wait on; a RealClock when not given. */
  clock?: Clock
}

export class PeerMesh extends EventEmitter {
  private readonly connected = new Map<string, PeerConnection>()
  private readonly links = new Map<string, PeerLink>()
  private readonly known: Map<string, MeshPeer>
  private blocked = new Set<string>()
  private faults = new Map<string, LinkFault>()
  private readonly log: Logger

  constructor(private readonly options: PeerMeshOptions) {
    super()
    this.known = new Map(options.peers.map((p) => [p.name, p]))
    this.log = options.log.child({ component: 'mesh' })
  }

  /** Names of the peers connected now, sorted. */
  connectedPeers(): string[] {
    return [...this.connected.keys()].sort()
  }

  connection(name: string): PeerConnection | undefined {
    return this.connected.get(name)
  }

  blockedPeers(): string[] {
    return [...this.blocked].sort()
  }

  linkFaults(): LinkFault[] {
    return [...this.faults.values()].sort((a, b) => a.peer.localeCompare(b.peer))
  }

  /** For the server: the role the topology gives peer `name`, or undefined when it is not a peer of this process. */
  roleOf(name: string): Role | undefined {
    return this.known.get(name)?.role
  }

  /** For the server: why an authenticated peer may not connect, or undefined. */
  admit(remote: { name: string; role: string }): string | undefined {
    if (!this.known.has(remote.name)) return `${remote.name} is not a peer of ${this.options.self.name} in this topology`
    if (this.blocked.has(remote.name)) return `${this.options.self.name} is partitioned from ${remote.name}`
    if (this.faults.get(remote.name)?.no_new_connections)
      return `a one-way partition between ${this.options.self.name} and ${remote.name} lets no new connection through`
    return undefined
  }

  /** For the server: an inbound connection that passed `admit`. */
  accept(connection: PeerConnection): void {
    this.adopt(connection)
  }

  /** The controller's directory: where each peer listens now. */
  updateDirectory(entries: { name: string; peerEndpoint: Endpoint }[]): void {
    for (const entry of entries) {
      if (!this.known.has(entry.name) || !this.options.dials(this.options.self.name, entry.name)) continue
      let link = this.links.get(entry.name)
      if (!link) {
        const expected = this.known.get(entry.name)!
        link = new PeerLink({
          name: this.options.self.name,
          role: this.options.self.role,
          secret: this.options.secret,
          tls: this.tlsTowards(expected),
          expectName: expected.name,
          expectRole: expected.role,
          log: this.log,
          metrics: this.options.metrics,
          limits: this.options.limits,
          clock: this.options.clock,
        })
        link.on('up', (c: PeerConnection) => this.adopt(c))
        this.links.set(entry.name, link)
        link.setEndpoint(entry.peerEndpoint)
        if (this.mayConnect(entry.name)) link.start()
      } else {
        link.setEndpoint(entry.peerEndpoint)
      }
    }
  }

  /** The controller's partition: peers this process must not reach. */
  setBlocked(names: string[]): void {
    const next = new Set(names)
    for (const name of next) {
      if (this.blocked.has(name)) continue
      this.links.get(name)?.stop()
      this.connected.get(name)?.terminate()
    }
    const unblocked = [...this.blocked].filter((name) => !next.has(name))
    this.blocked = next
    for (const name of unblocked) if (this.mayConnect(name)) this.links.get(name)?.start()
  }

  /** A connection reset: cuts the connections to `names` now; the links dial again, as after any loss. */
  resetConnections(names: readonly string[]): void {
    for (const name of names) this.connected.get(name)?.terminate()
  }

  /** The lab's link faults, one per peer that has any; a peer not named has a clear link. */
  setLinkFaults(faults: readonly LinkFault[]): void {
    const before = this.faults
    this.faults = new Map(faults.map((f) => [f.peer, f]))
    for (const name of new Set([...before.keys(), ...this.faults.keys()])) {
      const c = this.connected.get(name)
      if (c) this.applyFault(c)
      const link = this.links.get(name)
      if (!link || this.blocked.has(name)) continue
      if (!this.mayConnect(name)) link.hold()
      else if (before.get(name)?.no_new_connections) link.start()
    }
  }

  stop(): void {
    for (const link of this.links.values()) link.stop()
    for (const c of this.connected.values()) c.terminate()
  }

  /** TLS towards a peer of another organisation, with the certificate it must show; undefined towards one of ours. */
  private tlsTowards(peer: MeshPeer): { identity: TlsIdentity; peer: { name: string; organisation: string } } | undefined {
    const organisation = peer.organisation ?? LAB_ORGANISATION
    if (organisation === (this.options.self.organisation ?? LAB_ORGANISATION)) return undefined
    if (!this.options.tls)
      throw new HvlabError('HVLAB_E_INTERNAL', `no certificate to dial ${peer.name} of the organisation ${organisation}`)
    return { identity: this.options.tls, peer: { name: peer.name, organisation } }
  }

  private mayConnect(name: string): boolean {
    return !this.blocked.has(name) && !this.faults.get(name)?.no_new_connections
  }

  private applyFault(connection: PeerConnection): void {
    const fault = this.faults.get(connection.remoteName)
    connection.setLinkShape(fault?.shape ?? LINK_SHAPE_CLEAR)
    connection.setDeaf(fault?.deaf ?? false)
  }

  private adopt(connection: PeerConnection): void {
    const name = connection.remoteName
    if (!this.mayConnect(name)) {
      connection.terminate()
      return
    }
    this.applyFault(connection)
    const previous = this.connected.get(name)
    this.connected.set(name, connection)
    if (previous) previous.terminate()
    connection.once('close', (_code: number, reason: string) => {
      if (this.connected.get(name) !== connection) return
      this.connected.delete(name)
      this.emit('peer-down', name, reason || 'connection closed')
    })
    this.emit('peer-up', connection)
  }
}
