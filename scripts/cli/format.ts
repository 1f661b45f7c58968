/** How the CLI prints the lab's status and timeline for people (`--json` prints raw). */
import type { ClusterStatus } from '../../shared/protocol/cluster-messages.js'
import type { LabClusterStatus, LabStatus } from '../controller/lab-controller.js'
import type { TimelineEvent } from '../controller/timeline.js'

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n')
}

export function duration(ms: number | null): string {
  if (ms === null) return '-'
  if (ms < 1000) return `${ms}ms`
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
}

export function formatStatus(s: LabStatus): string {
  const rows = [['NAME', 'ROLE', 'SITE', 'STATE', 'PID', 'UPTIME', 'PEERS', 'METRICS']]
  for (const p of s.processes) {
    const missing = p.expectedPeers.filter((e) => !p.peers.includes(e))
    const peers = p.state === 'down' ? '-' : `${p.peers.length}/${p.expectedPeers.length}${missing.length ? ` (missing ${missing.join(',')})` : ''}`
    rows.push([p.name, p.role, p.site, p.state, p.pid === null ? '-' : String(p.pid), duration(p.uptime_ms), peers, p.metricsPort ? `http://127.0.0.1:${p.metricsPort}/metrics` : '-'])
  }
  const lines = [`lab ${s.lab.name} in ${s.lab.dir}: ${s.lab.healthy ? 'healthy' : 'NOT healthy'} (controller pid ${s.lab.controllerPid})`, table(rows)]
  for (const p of s.partitions) lines.push(`partition: ${p.a.join(',')}  ✕  ${p.b.join(',')}`)
  if (s.cluster) lines.push('', formatCluster(s.cluster))
  for (const p of s.processes) {
    if (p.state === 'down' && p.lastExit && !p.lastExit.requested) {
      lines.push(`${p.name} died by itself (${p.lastExit.signal ? `signal ${p.lastExit.signal}` : `exit code ${p.lastExit.code}`}); last log lines:`)
      for (const l of p.lastExit.lastLogLines) lines.push(`  ${l}`)
    }
  }
  return lines.join('\n')
}

export function formatEvent(e: TimelineEvent): string {
  const t = new Date(e.at_ms).toISOString().slice(11, 23)
  const details = Object.entries(e.details)
    .filter(([k]) => k !== 'lastLogLines')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  const lines = Array.isArray(e.details.lastLogLines) ? (e.details.lastLogLines as unknown[]).map((l) => `\n    ${String(l)}`).join('') : ''
  return `${t}  ${e.source.padEnd(9)} ${e.kind.padEnd(20)} ${details}${lines}`
}

/** The host whose view to show: a coordinator holding the lease, else any lease holder, else the first. */
export function referenceHost(c: LabClusterStatus): ClusterStatus | undefined {
  const all = Object.values(c.hosts)
  return all.find((h) => h.holds_lease && h.is_coordinator) ?? all.find((h) => h.holds_lease) ?? all[0]
}

/** The failover cluster: quorum model and votes, witness vote holder, each node's state and lease. */
export function formatCluster(c: LabClusterStatus): string {
  const ref = referenceHost(c)
  if (!ref) return 'cluster: no host answered'
  const onOff = (b: boolean): string => (b ? 'on' : 'off')
  const holders = Object.values(c.hosts).filter((h) => h.holds_lease).map((h) => h.node)
  const lines = [
    `cluster: ${ref.model}, dynamic quorum ${onOff(ref.dynamic_quorum)}, dynamic witness ${onOff(ref.dynamic_witness)}; epoch ${ref.epoch}${ref.forced ? ' (FORCED)' : ''}, coordinator ${ref.coordinator}, as ${ref.node} sees it`,
    `quorum: ${ref.holds_lease ? 'HELD' : 'NOT HELD'} by ${holders.length ? holders.join(',') : 'no host'}; votes present ${ref.votes_present} of ${ref.votes_total}, needed ${ref.votes_needed}` +
      (ref.witness ? `; witness ${ref.witness.name} ${ref.witness.votes ? 'votes' : 'does not vote (dynamic witness)'}, vote holder ${c.witness?.vote_holder ?? 'none'}` : ''),
  ]
  const rows = [['NODE', 'SITE', 'STATE', 'VOTE', 'QUORUM', 'EPOCH']]
  for (const n of ref.nodes) {
    const own = c.hosts[n.name]
    rows.push([n.name, n.site, n.state, n.voter ? 'yes' : 'no', own ? (own.holds_lease ? 'yes' : 'no') : '-', own ? String(own.epoch) : '-'])
  }
  lines.push(table(rows))
  return lines.join('\n')
}
