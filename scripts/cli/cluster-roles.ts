/**
 * What `hvlab cluster status` shows from the coordinator's role list besides the quorum:
 * each node's drain (Get-ClusterNode's DrainStatus) and each VM's failure counters
 * against the failover policy ("failovers 1 of 3 in 6 h"), with its last failure. Pure.
 */
import type { DRAIN_STATUSES } from '../../shared/protocol/cluster-messages.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { duration, table } from './format.js'

type RoleList = Omit<MessageOf<'role-list-reply'>, 't'>
export type DrainStatus = (typeof DRAIN_STATUSES)[number]

export interface VmFailureCounters {
  name: string
  state: string
  owner: string | null
  /** Restarts on its owner (or last owner) within the restart period. */
  restarts: number
  failovers: number
  /** Its own failover threshold and period (vm set), when it has them; else the cluster's apply. */
  failovers_max?: number
  failover_period_ms?: number
  /** The newest restart or failover, ms since the epoch; null: none in the windows. */
  last_failure_ms: number | null
}

export interface ClusterRoleStatus {
  /** 'database': no coordinator answered (no drains, counters as last recorded). */
  source: RoleList['source']
  /** By node; a node not listed has NotInitiated. */
  drains: Record<string, DrainStatus>
  failover_policy: RoleList['failover_policy'] | null
  vms: VmFailureCounters[]
}

/** The counters of every role inside the policy's windows ending at now_ms. */
export function clusterRoleStatus(list: RoleList, now_ms: number): ClusterRoleStatus {
  const policy = list.failover_policy ?? null
  const vms = list.roles.map((r) => {
    const node = r.owner ?? r.last_owner
    const restarts = (r.failures?.restarts ?? []).filter(
      (x) => x.node === node && (policy === null || x.at_ms > now_ms - policy.restart_period_ms),
    )
    const own = {
      ...(r.failover_threshold != null ? { failovers_max: r.failover_threshold } : {}),
      ...(r.failover_period_h !== undefined ? { failover_period_ms: r.failover_period_h * 3_600_000 } : {}),
    }
    const window_ms = own.failover_period_ms ?? policy?.failover_period_ms
    const failovers = (r.failures?.failovers_ms ?? []).filter((at) => window_ms === undefined || at > now_ms - window_ms)
    const times = [...(r.failures?.restarts ?? []).map((x) => x.at_ms), ...(r.failures?.failovers_ms ?? [])]
    return {
      name: r.name,
      state: r.state,
      owner: r.owner,
      restarts: restarts.length,
      failovers: failovers.length,
      ...own,
      last_failure_ms: times.length === 0 ? null : Math.max(...times),
    }
  })
  const drains = Object.fromEntries((list.drains ?? []).map((d) => [d.node, d.status]))
  return { source: list.source, drains, failover_policy: policy, vms }
}

/** One row per VM: its failure counters against the limits, and when it last failed. */
export function formatVmCounters(s: ClusterRoleStatus, now_ms: number): string {
  if (s.vms.length === 0) return 'vms: none'
  const p = s.failover_policy
  const of = (n: number, max: number | undefined, period_ms: number | undefined): string =>
    max === undefined || period_ms === undefined ? String(n) : `${n} of ${max} in ${period(period_ms)}`
  const rows = [['VM', 'STATE', 'OWNER', 'RESTARTS', 'FAILOVERS', 'LAST FAILURE']]
  for (const v of s.vms) {
    rows.push([
      v.name,
      v.state,
      v.owner ?? '-',
      of(v.restarts, p?.restarts_max, p?.restart_period_ms),
      of(v.failovers, v.failovers_max ?? p?.failovers_max, v.failover_period_ms ?? p?.failover_period_ms),
      v.last_failure_ms === null
        ? '-'
        : `${new Date(v.last_failure_ms).toISOString().slice(11, 19)} (${duration(Math.max(0, Math.round(now_ms - v.last_failure_ms)))} ago)`,
    ])
  }
  const note = s.source === 'database' ? '\n(from the cluster database: no coordinator answered; counters as last recorded)' : ''
  return `${table(rows)}${note}`
}

function period(ms: number): string {
  const HOUR_MS = 3_600_000
  if (ms >= HOUR_MS && ms % HOUR_MS === 0) return `${ms / HOUR_MS} h`
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`
  return duration(ms)
}
