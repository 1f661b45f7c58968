/**
 * Where a replica server sends a failed-over VM's changes back: the cluster member the
 * cluster's Replica Broker placed the VM's reverse replica on. The server asks the broker
 * every REVERSE_PLACEMENT_CHECK_MS for each VM it replicates back, through whichever
 * member answers (the broker's last owner first; a member that is not the broker's owner
 * names it). The broker places the replica again when its member is gone (or when the broker
 * itself failed over and finds that member down), and the next answer says so: the reverse
 * replication then begins again there (a resync by block hashes against the VM's volume).
 * While no answer comes the last placement stays.
 */
import type { Clock } from '../../shared/clock.js'
import { HvlabError, describeError, isTransientError } from '../../shared/errors.js'
import { every } from '../../shared/periodic-task.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'

/** How often a replica server asks where its reverse replicas go. */
export const REVERSE_PLACEMENT_CHECK_MS = 2000
const ASK_TIMEOUT_MS = 10_000

export interface ReversePlacementDeps {
  /** This replica server. */
  readonly server: string
  readonly clock: Clock
  /** The cluster's hosts (the topology's), asked in turn until one answers. */
  readonly members: readonly string[]
  /** The VMs failed over here whose changes go back (running or finishing). */
  reversed(): readonly string[]
  /** Sends a request to `node` and resolves its reply; rejects with an HvlabError (none connected: HVLAB_E_CLOSED). */
  ask(node: string, message: Message, timeout_ms: number): Promise<Message>
  /** The broker says `vm` runs in its cluster as its own (HVLAB_E_REPLICA_RUNS_ELSEWHERE): the copy here is the older one. */
  runsElsewhere?(vm: string): void
  readonly log: { info(details: object, message: string): void; warn(details: object, message: string): void }
}

type PlaceReply = MessageOf<'replica-broker-place-reply'>

export class ReversePlacements {
  private readonly placed = new Map<string, string>()
  private readonly errors = new Map<string, HvlabError>()
  private broker_owner: string | null = null

  constructor(private readonly d: ReversePlacementDeps) {}

  start(): void {
    every(
      this.d.clock,
      REVERSE_PLACEMENT_CHECK_MS,
      () => this.refresh(),
      (e) => this.d.log.warn({ err: describeError(e) }, 'reverse placement check failed'),
    )
  }

  /** The member `vm`'s changes go back to now; undefined: not placed (yet). */
  hostOf(vm: string): string | undefined {
    return this.placed.get(vm)
  }

  /** Why the broker did not place `vm` at the last ask (a refusal); undefined: it did, or not asked yet. */
  errorOf(vm: string): HvlabError | undefined {
    return this.errors.get(vm)
  }

  /** Asks the broker once for every VM replicated back from here (public for tests). */
  async refresh(): Promise<void> {
    const vms = new Set(this.d.reversed())
    for (const vm of this.placed.keys()) if (!vms.has(vm)) this.placed.delete(vm)
    for (const vm of this.errors.keys()) if (!vms.has(vm)) this.errors.delete(vm)
    for (const vm of vms) {
      try {
        const host = await this.ask(vm)
        this.errors.delete(vm)
        if (host !== undefined && host !== this.placed.get(vm)) this.d.log.info({ vm, host }, 'reverse replica placed by the broker')
        if (host !== undefined) this.placed.set(vm, host)
      } catch (e) {
        if (e instanceof HvlabError) this.errors.set(vm, e)
        if (HvlabError.has(e, 'HVLAB_E_REPLICA_RUNS_ELSEWHERE')) this.d.runsElsewhere?.(vm)
        this.d.log.warn({ vm, err: describeError(e) }, 'the Replica Broker did not place the reverse replica')
      }
    }
  }

  /** The broker's answer through the first member that gives one; undefined when none answered (a refusal throws). */
  private async ask(vm: string): Promise<string | undefined> {
    const order = [...new Set([...(this.broker_owner === null ? [] : [this.broker_owner]), ...this.d.members])]
    for (const member of order) {
      let reply = await this.placeAt(member, vm)
      if (reply === undefined) continue
      if (reply.host === null && reply.broker_owner !== null && reply.broker_owner !== member)
        reply = await this.placeAt(reply.broker_owner, vm)
      if (reply?.host == null) continue
      this.broker_owner = reply.broker_owner
      return reply.host
    }
    return undefined
  }

  /** One member's answer; undefined when it gave none now (no connection, no answer in time, no quorum). */
  private async placeAt(member: string, vm: string): Promise<PlaceReply | undefined> {
    const q: Message = { t: 'replica-broker-place-request', vm, server: this.d.server, first: false }
    let reply: Message
    try {
      reply = await this.d.ask(member, q, ASK_TIMEOUT_MS)
    } catch (e) {
      if (isTransientError(e)) return undefined
      throw e
    }
    if (reply.t !== 'replica-broker-place-reply')
      throw new HvlabError('HVLAB_E_PROTOCOL', `${member} answered ${reply.t}, expected replica-broker-place-reply`)
    return reply
  }
}
