/**
 * Per-peer failure detection (pure; time is an input). A peer is down once it has
 * missed `missed_max` heartbeats at its interval: the same-site and cross-site interval
 * and threshold are separate (WSFC 2016: every 1 s, 10 missed within a site, 20 across).
 *
 * Only the peers this host watches are judged (`watch`): the membership watches the peers
 * that heartbeat it (membership.ts heartbeatPeers). A peer it does not watch is counted up,
 * never silent and never declared down — someone else (the coordinator) judges it.
 */
export interface HeartbeatSettings {
  same_site_interval_ms: number
  same_site_missed_max: number
  cross_site_interval_ms: number
  cross_site_missed_max: number
}

export const WSFC_HEARTBEAT_DEFAULTS: HeartbeatSettings = {
  same_site_interval_ms: 1000,
  same_site_missed_max: 10,
  cross_site_interval_ms: 1000,
  cross_site_missed_max: 20,
}

export function checkHeartbeatSettings(s: HeartbeatSettings): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`heartbeat setting ${k} must be a positive integer, got ${v}`)
  }
}

export class HeartbeatDetector {
  private readonly last_heard_ms = new Map<string, number>()
  private readonly down = new Set<string>()
  private readonly peer_names: string[]
  /** The peers judged; all of them until `watch` says otherwise. */
  private watched: ReadonlySet<string>
  /** When each peer was last watched anew: it is not declared down within a window of that. */
  private readonly watched_from_ms = new Map<string, number>()

  /** `sites` maps every node (self included) to its site. */
  constructor(
    private readonly self: string,
    private readonly sites: ReadonlyMap<string, string>,
    private readonly settings: HeartbeatSettings,
    start_ms: number,
  ) {
    checkHeartbeatSettings(settings)
    this.peer_names = [...sites.keys()].filter((n) => n !== self).sort()
    if (!sites.has(self)) throw new RangeError(`node ${self} has no site in the topology`)
    // A peer is given one full detection window from start before it is declared down.
    for (const peer of this.peers()) this.last_heard_ms.set(peer, start_ms)
    this.watched = new Set(this.peer_names)
  }

  /**
   * Judges only `peers` from now on. A peer watched anew is given one full detection window
   * from `now_ms` before it is declared down (it heartbeated someone else until now), as
   * every peer is at start, though its silence still counts from when it was last heard; a peer
   * no longer watched is no longer counted down (whoever watches it now judges it), unless
   * it announced that it leaves.
   */
  watch(peers: Iterable<string>, now_ms: number): void {
    const next = new Set([...peers].filter((p) => this.sites.has(p) && p !== this.self))
    for (const peer of this.peer_names) {
      if (this.last_heard_ms.get(peer) === -Infinity || next.has(peer) === this.watched.has(peer)) continue
      if (next.has(peer)) this.watched_from_ms.set(peer, now_ms)
      else this.down.delete(peer)
    }
    this.watched = next
  }

  peers(): readonly string[] {
    return this.peer_names
  }

  sameSite(peer: string): boolean {
    return this.sites.get(peer) === this.sites.get(this.self)
  }

  /** How often to send a heartbeat to `peer`. */
  intervalTo(peer: string): number {
    return this.sameSite(peer) ? this.settings.same_site_interval_ms : this.settings.cross_site_interval_ms
  }

  /** Silence after which `peer` is down. */
  timeoutFor(peer: string): number {
    return this.sameSite(peer)
      ? this.settings.same_site_interval_ms * this.settings.same_site_missed_max
      : this.settings.cross_site_interval_ms * this.settings.cross_site_missed_max
  }

  /** Records a heartbeat (or any message) from `peer`. Returns true if the peer came back up. */
  heard(peer: string, now_ms: number): boolean {
    if (!this.sites.has(peer) || peer === this.self) return false
    const prev = this.last_heard_ms.get(peer) ?? now_ms
    this.last_heard_ms.set(peer, Math.max(prev, now_ms))
    return this.down.delete(peer)
  }

  /** Marks a peer down at once (it announced that it leaves). */
  markDown(peer: string): void {
    if (this.sites.has(peer) && peer !== this.self) {
      this.down.add(peer)
      this.last_heard_ms.set(peer, -Infinity)
    }
  }

  isUp(peer: string, now_ms: number): boolean {
    if (this.down.has(peer)) return false
    if (!this.watched.has(peer)) return this.sites.has(peer) && peer !== this.self
    const last = this.last_heard_ms.get(peer)
    if (last === undefined) return false
    return now_ms - Math.max(last, this.watched_from_ms.get(peer) ?? -Infinity) <= this.timeoutFor(peer)
  }

  /**
   * How long `peer` has been silent (Infinity once it announced that it leaves). A peer is
   * "suspected" well before it is declared down: the membership uses this to stop waiting
   * for a coordinator that no longer renews the lease (see Membership.takeoverDue).
   */
  silentFor(peer: string, now_ms: number): number {
    const last = this.last_heard_ms.get(peer)
    if (last === undefined || last === -Infinity) return Infinity
    return this.watched.has(peer) ? Math.max(0, now_ms - last) : 0
  }

  /** Peers that went down since the last call (each reported once). */
  newlyDown(now_ms: number): string[] {
    const out: string[] = []
    for (const peer of this.peers()) {
      if (!this.down.has(peer) && !this.isUp(peer, now_ms)) {
        this.down.add(peer)
        out.push(peer)
      }
    }
    return out
  }

  upPeers(now_ms: number): string[] {
    return this.peers().filter((p) => this.isUp(p, now_ms))
  }
}
