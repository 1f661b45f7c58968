/**
 * The default lab cluster for simulations: site-a (host-a1, host-a2), site-b (host-b1,
 * host-b2), the witness in site-c; fast lab timings; and the invariant checks.
 */
import type { MembershipConfig } from '../../agent/cluster/membership.js'
import type { QuorumSettings } from '../../agent/cluster/quorum.js'
import type { ArbiterConfig } from '../../witness/arbiter.js'
import { SimNetwork, type NetworkOptions } from './network.js'

export const WITNESS_NAME = 'witness-c'
export const DEFAULT_SITES: Record<string, string> = {
  'host-a1': 'site-a',
  'host-a2': 'site-a',
  'host-b1': 'site-b',
  'host-b2': 'site-b',
}

/** The clock skew the simulated hosts allow for, and the random schedules give their clocks. */
export const SIM_CLOCK_SKEW_MS = 20

export interface LabOptions {
  seed: number
  sites?: Record<string, string>
  quorum?: Partial<Omit<QuorumSettings, 'nodes'>>
  witness?: boolean
  net?: Partial<NetworkOptions>
  /** Timings and heartbeat settings to use instead of the fast ones (the lab's own, say). */
  config?: Partial<MembershipConfig>
}

export function hostConfig(
  name: string,
  sites: Record<string, string>,
  quorum: Omit<QuorumSettings, 'nodes'>,
  witness: string | null,
): MembershipConfig {
  return {
    name,
    sites,
    witness,
    quorum,
    heartbeat: { same_site_interval_ms: 100, same_site_missed_max: 5, cross_site_interval_ms: 100, cross_site_missed_max: 8 },
    tick_ms: 100,
    lease_ms: 800,
    renew_interval_ms: 200,
    clock_skew_ms: SIM_CLOCK_SKEW_MS,
    election_timeout_ms: 1200,
    election_stagger_ms: 150,
    takeover_stagger_ms: 100,
    gather_ms: 150,
    phase_timeout_ms: 500,
    roles_stop_bound_ms: 200,
    config_writes_pending_max: 16,
  }
}

export function makeLab(o: LabOptions): SimNetwork {
  const sites = o.sites ?? DEFAULT_SITES
  const quorum: Omit<QuorumSettings, 'nodes'> = {
    model: 'node-and-file-share-majority',
    dynamic_quorum: true,
    dynamic_witness: true,
    ...o.quorum,
  }
  const withWitness = o.witness ?? quorum.model === 'node-and-file-share-majority'
  const witness = withWitness ? WITNESS_NAME : null
  const hosts = Object.keys(sites).map((n) => ({ ...hostConfig(n, sites, quorum, witness), ...o.config }))
  const h0 = hosts[0]!
  const witnessConfig: ArbiterConfig | null = witness
    ? {
        name: witness,
        nodes: Object.keys(sites),
        lease_ms: h0.lease_ms,
        clock_skew_ms: h0.clock_skew_ms,
        renew_interval_ms: h0.renew_interval_ms,
      }
    : null
  return new SimNetwork({
    seed: o.seed,
    hosts,
    witness: witnessConfig,
    delay_ms_min: 1,
    delay_ms_max: 15,
    spike_probability: 0,
    spike_ms_max: 0,
    loss_probability: 0,
    ...o.net,
  })
}

/** Hosts that may run roles right now (each by its own clock). */
export function leaseHolders(net: SimNetwork): { name: string; epoch: number }[] {
  const out: { name: string; epoch: number }[] = []
  for (const [name, host] of net.hosts) if (host && host.holdsLease(net.localNow(name))) out.push({ name, epoch: host.view().epoch })
  return out
}

/**
 * Checks the safety invariants; returns a description of the first violation, or null.
 * `seen` carries state between calls (the witness's highest epochs).
 */
export interface InvariantState {
  witness_epoch: number
  witness_db_epoch: number
}

/**
 * The invariants of carried-over leases (shared/consensus/acceptor.ts), each host read by
 * its own clock:
 *   - a host that holds a lease of view e, and was left out of a decided view f > e, holds
 *     it no longer than f's `leases_end_ms`, nor than f's `removed_lease_end_ms` when f
 *     is the view that removed it (what its removal's roles_free_at counts from);
 *   - at most one host runs the cluster's roles (a coordinator that took over waits out
 *     the leases of the views before);
 *   - the witness's epochs never go backwards.
 */
export function checkSafety(net: SimNetwork, s: InvariantState): string | null {
  let runs_roles: string | null = null
  for (const [name, host] of net.hosts) {
    if (!host) continue
    const now_ms = net.localNow(name)
    if (host.runsRoles(now_ms)) {
      if (runs_roles !== null) return `${runs_roles} and ${name} both run the roles at ${net.now_ms} ms`
      runs_roles = name
    }
    if (!host.holdsLease(now_ms)) continue
    const problem = leaseOutlivesRemoval(net, name, host.view().epoch, host.leaseUntil())
    if (problem) return problem
  }
  const w = net.witnessRecord
  if (w) {
    if (w.committed_epoch < s.witness_epoch || w.db_epoch < s.witness_db_epoch) {
      return `witness epochs went backwards: ${s.witness_epoch}/${s.witness_db_epoch} -> ${w.committed_epoch}/${w.db_epoch}`
    }
    s.witness_epoch = w.committed_epoch
    s.witness_db_epoch = w.db_epoch
  }
  return null
}

function leaseOutlivesRemoval(net: SimNetwork, name: string, epoch: number, until_ms: number): string | null {
  for (const v of net.decided.values()) {
    if (v.epoch <= epoch || v.members.includes(name)) continue
    // The view that removed it (from the view before it) counts on its own bound for it.
    const removed_by_it = net.decided.get(v.epoch - 1)?.members.includes(name) === true
    const bound_ms = removed_by_it ? Math.min(v.leases_end_ms, v.removed_lease_end_ms) : v.leases_end_ms
    if (until_ms <= bound_ms) continue
    return `${name} holds a lease of epoch ${epoch} until ${until_ms.toFixed(1)} at ${net.now_ms} ms, but view ${v.epoch} (by ${v.by}) left it out counting on its lease ending by ${bound_ms.toFixed(1)}`
  }
  return null
}

/** Once faults stop: every live host in one view, a member of it, holding the lease, with one database. */
export function convergenceProblem(net: SimNetwork): string | null {
  const live = [...net.hosts.entries()].filter(([, h]) => h !== null) as [string, NonNullable<ReturnType<SimNetwork['hosts']['get']>>][]
  const first = live[0]?.[1]
  if (!first) return 'no live host'
  const view = first.view()
  for (const [name, h] of live) {
    const v = h.view()
    if (v.epoch !== view.epoch) return `${name} is at epoch ${v.epoch}, ${live[0]![0]} at ${view.epoch}`
    if (!v.members.includes(name)) return `${name} is not a member of view ${v.epoch} (${v.members.join(',')})`
    if (!h.holdsLease(net.localNow(name))) return `${name} holds no quorum lease in view ${v.epoch}`
    if (h.database().db_epoch !== first.database().db_epoch)
      return `${name} has database ${h.database().db_epoch}, ${live[0]![0]} has ${first.database().db_epoch}`
  }
  return null
}
