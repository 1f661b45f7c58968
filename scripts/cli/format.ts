/** How the CLI prints the lab's status and timeline for people (`--json` prints raw). */
import { epochParts } from '../../shared/consensus/epoch-generation.js'
import type { DrainStatus } from './cluster-roles.js'
import type { ValidationCheck } from './cluster-validation.js'
import type { VmStorageView } from './vm-storage-status.js'
import type { ClusterStatus, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { LabClusterStatus, LabStatus } from '../controller/lab-controller.js'
import { chosenClusterName } from './cluster-choice.js'
import type { LinkRow } from '../controller/link-table.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'
import { exitReport } from './process-exit-format.js'

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

/** The PEERS column: none while down, stale while paused (its peers are losing it), else connected of expected. */
function peersColumn(p: LabStatus['processes'][number]): string {
  if (p.state === 'down') return '-'
  if (p.state === 'paused') return 'paused'
  const missing = p.expectedPeers.filter((e) => !p.peers.includes(e))
  return `${p.peers.length}/${p.expectedPeers.length}${missing.length ? ` (missing ${missing.join(',')})` : ''}`
}

/** Event-loop lag for the LAG P99 column: whole ms (`<1ms` below half a ms); '-' while unknown (down, starting, not answering). */
export function lagColumn(lag: { p99_ms: number } | null | undefined): string {
  if (!lag) return '-'
  return lag.p99_ms < 0.5 ? '<1ms' : `${Math.round(lag.p99_ms)}ms`
}

export function formatStatus(s: LabStatus, now_ms = Date.now()): string {
  const rows = [['NAME', 'ROLE', 'SITE', 'STATE', 'PID', 'UPTIME', 'PEERS', 'LAG P99', 'METRICS']]
  for (const p of s.processes) {
    rows.push([
      p.name,
      p.role,
      p.site,
      p.state,
      p.pid === null ? '-' : String(p.pid),
      duration(p.uptime_ms),
      peersColumn(p),
      lagColumn(p.eventLoopLag),
      p.metricsPort ? `http://127.0.0.1:${p.metricsPort}/metrics` : '-',
    ])
  }
  const lines = [
    `lab ${s.lab.name} in ${s.lab.dir}: ${s.lab.healthy ? 'healthy' : 'NOT healthy'} (controller pid ${s.lab.controllerPid}${s.lab.eventLoopLag ? `, lag p99 ${lagColumn(s.lab.eventLoopLag)}` : ''})`,
    table(rows),
    ...s.processes.flatMap((p) => exitReport(p, now_ms)),
  ]
  for (const p of s.partitions) lines.push(`partition: ${p.a.join(',')}  ✕  ${p.b.join(',')}`)
  for (const p of s.processes) if (p.clockSkew) lines.push(`clock ${p.name}: ${formatClockSkew(p.clockSkew)}`)
  if (s.links.length > STATUS_LINKS_LISTED_MAX)
    lines.push(`links: ${s.links.length} directions with a fault (\`hvlab link show\` lists them)`)
  else for (const l of s.links) lines.push(formatLink(l))
  const clusters = [...(s.cluster ? [s.cluster] : []), ...(s.clusters ?? [])]
  for (const c of clusters) lines.push('', formatCluster(c, undefined, clusters.length > 1))
  return lines.join('\n')
}

export function formatEvent(e: TimelineEvent): string {
  const t = new Date(e.at_ms).toISOString().slice(11, 23)
  const d: Readonly<Record<string, unknown>> = e.details
  const details = Object.entries(d)
    .filter(([k]) => k !== 'lastLogLines')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
  const lines = Array.isArray(d.lastLogLines) ? (d.lastLogLines as unknown[]).map((l) => `\n    ${String(l)}`).join('') : ''
  return `${t}  ${e.source.padEnd(9)} ${e.kind.padEnd(20)} ${details}${lines}`
}

/** The host whose view to show: a coordinator holding the lease, else any lease holder, else the first. */
export function referenceHost(c: LabClusterStatus): ClusterStatus | undefined {
  const all = Object.values(c.hosts)
  // With no lease held, the last view's coordinator: it alone judges every member (a member
  // watches only its coordinator), so another member's view may still count a dead one present.
  return all.find((h) => h.holds_lease && h.is_coordinator) ?? all.find((h) => h.holds_lease) ?? all.find((h) => h.is_coordinator) ?? all[0]
}

/**
 * An epoch for people: a forced quorum starts a new generation of epochs (the generation
 * sits in the epoch's high bits), shown as GENERATION/EPOCH; generation 0 shows the epoch alone.
 */
export function formatEpoch(epoch: number): string {
  const { generation, within } = epochParts(epoch)
  return generation === 0 ? String(epoch) : `${generation}/${within}`
}

/**
 * A failover cluster (`named`: headed by its name, in a lab of several): quorum model and votes, witness vote holder, each node's state,
 * vote (NodeWeight), whether its vote counts now (DynamicWeight), lease and, when the
 * coordinator's `drains` are known, its drain status.
 */
export function formatCluster(c: LabClusterStatus, drains?: Readonly<Record<string, DrainStatus>>, named = false): string {
  const ref = referenceHost(c)
  const cluster = named && c.name !== undefined ? `cluster ${c.name}` : 'cluster'
  if (!ref) return `${cluster}: no host answered`
  const onOff = (b: boolean): string => (b ? 'on' : 'off')
  const holders = Object.values(c.hosts)
    .filter((h) => h.holds_lease)
    .map((h) => h.node)
  const lines = [
    `${cluster}: ${ref.model}, dynamic quorum ${onOff(ref.dynamic_quorum)}, dynamic witness ${onOff(ref.dynamic_witness)}; epoch ${formatEpoch(ref.epoch)}${ref.forced ? ' (FORCED)' : ''}, coordinator ${ref.coordinator}, as ${ref.node} sees it`,
    `quorum: ${ref.holds_lease ? 'HELD' : 'NOT HELD'} by ${holders.length ? holders.join(',') : 'no host'}; votes present ${ref.votes_present} of ${ref.votes_total}, needed ${ref.votes_needed}` +
      (ref.witness
        ? `; witness ${ref.witness.name} ${ref.witness.votes ? 'votes' : 'does not vote (dynamic witness)'}, vote holder ${c.witness?.vote_holder ?? 'none'}`
        : ''),
  ]
  const rows = [['NODE', 'SITE', 'STATE', 'WEIGHT', 'DYNAMIC', ...(drains ? ['DRAIN'] : []), 'QUORUM', 'EPOCH']]
  for (const n of ref.nodes) {
    const own = c.hosts[n.name]
    rows.push([
      n.name,
      n.site,
      n.state,
      String(n.node_weight ?? 1),
      String(n.dynamic_weight ?? (n.voter ? 1 : 0)),
      ...(drains ? [drains[n.name] ?? 'NotInitiated'] : []),
      own ? (own.holds_lease ? 'yes' : 'no') : '-',
      own ? formatEpoch(own.epoch) : '-',
    ])
  }
  lines.push(table(rows))
  if (ref.nodes.some((n) => n.node_weight === 1 && n.dynamic_weight === 0 && n.state === 'Up')) {
    lines.push('(DYNAMIC 0 on an Up node: dynamic quorum took its vote to keep the total odd)')
  }
  return lines.join('\n')
}

/**
 * `hvlab vm list`: one row per VM role, with its priority and, when `storage` is given, its
 * storage as its owner sees it (ok, lost, local for a vm without shared storage, - when it
 * runs nowhere or its owner did not answer); why storage is lost goes in REASON.
 */
export function formatVmList(
  r: { coordinator: string; source: 'coordinator' | 'database'; roles: readonly VmRoleRecord[] },
  storage?: VmStorageView,
): string {
  const head =
    r.source === 'coordinator'
      ? `vm roles as coordinator ${r.coordinator} runs them:`
      : `vm roles from the cluster database (coordinator ${r.coordinator} did not answer; states may be stale):`
  const cluster = chosenClusterName() // a hint for the cluster asked: its hosts are its own
  const create =
    cluster === null ? 'hvlab vm create NAME --preferred host-a1,host-a2' : `hvlab --cluster ${cluster} vm create NAME --preferred HOST,…`
  if (r.roles.length === 0) return `${head}\nno vms yet; create one with \`${create}\``
  const rows = [['NAME', 'STATE', 'OWNER', 'MEMORY', 'PREFERRED', 'PRIORITY', ...(storage ? ['STORAGE'] : []), 'REASON']]
  for (const v of r.roles) {
    const s = storage?.[v.name]
    rows.push([
      v.name,
      v.state,
      v.owner ?? (v.last_owner ? `(${v.last_owner})` : '-'),
      `${v.memory_mib} MiB`,
      v.preferred_owners.join(',') || '-',
      v.priority ?? 'medium',
      ...(storage ? [storageCell(v, s?.state)] : []),
      s?.state === 'lost' ? `${v.reason}; storage lost: ${s.reason}` : v.reason,
    ])
  }
  return `${head}\n${table(rows)}`
}

function storageCell(v: VmRoleRecord, state: VmStorageView[string]['state'] | undefined): string {
  if (v.storage == null || v.storage.kind === 'local') return 'local'
  if (state === undefined || state === 'unknown') return '-'
  return state
}

/** `hvlab vm deps NAME`: VM → disks → storage resource. */
export function formatVmDeps(v: VmRoleRecord): string {
  return [
    `vm ${v.name} (${v.state}${v.owner ? ` on ${v.owner}` : ''}, ${v.memory_mib} MiB)`,
    `└─ disks: none yet — vm roles name no disks until vms get storage, so there is no storage resource to depend on`,
  ].join('\n')
}

const MARK: Record<ValidationCheck['result'], string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'SKIP' }

/** `hvlab cluster validate` on the terminal. */
export function formatValidation(checks: readonly ValidationCheck[], report: string): string {
  const rows = [['RESULT', 'AREA', 'CHECK', 'DETAIL']]
  for (const c of checks) rows.push([MARK[c.result], c.area, c.name, c.detail])
  const failed = checks.filter((c) => c.result === 'fail').length
  const warned = checks.filter((c) => c.result === 'warn').length
  const verdict = failed > 0 ? `FAILED: ${failed} check(s) failed` : `passed${warned > 0 ? ` with ${warned} warning(s)` : ''}`
  return `${table(rows)}\n\nvalidation ${verdict}; report: ${report}`
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!)

/** The validation report as a standalone HTML page. */
export function validationHtml(checks: readonly ValidationCheck[], lab: { name: string; at: string }): string {
  const color: Record<ValidationCheck['result'], string> = { pass: '#1a7f37', fail: '#cf222e', warn: '#9a6700', skip: '#6e7781' }
  const rows = checks
    .map(
      (c) =>
        `<tr><td style="color:${color[c.result]};font-weight:bold">${MARK[c.result]}</td><td>${escapeHtml(c.area)}</td><td>${escapeHtml(c.name)}</td><td>${escapeHtml(c.detail)}</td></tr>`,
    )
    .join('\n')
  const failed = checks.some((c) => c.result === 'fail')
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>hvlab cluster validation — ${escapeHtml(lab.name)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}</style></head>
<body><h1>Cluster validation: ${escapeHtml(lab.name)}</h1>
<p>Run at ${escapeHtml(lab.at)}. Result: <strong>${failed ? 'FAILED' : 'passed'}</strong>.</p>
<table><tr><th>Result</th><th>Area</th><th>Check</th><th>Detail</th></tr>
${rows}
</table></body></html>
`
}

/** `hvlab status` lists the links with a fault up to this many, and counts them beyond. */
const STATUS_LINKS_LISTED_MAX = 8

/** One line per direction with a fault, or a line that says there is none. */
export function formatLinks(links: readonly LinkRow[]): string {
  if (links.length === 0) return 'every link is clear'
  return links.map(formatLink).join('\n')
}

export function formatLink(r: LinkRow): string {
  if (r.cut) return `link ${r.from} → ${r.to}: cut (one-way partition)`
  const parts = [
    r.latency_ms > 0 || r.jitter_ms > 0 ? `${r.latency_ms} ms${r.jitter_ms > 0 ? ` ± ${r.jitter_ms}` : ''}` : '',
    r.mbit > 0 ? `${r.mbit} Mbit/s` : '',
    r.loss > 0 ? `loss ${r.loss}` : '',
  ].filter((p) => p !== '')
  return `link ${r.from} → ${r.to}: ${parts.join(', ')}`
}

/** "300 ms ahead, gaining 1 %" / "the real clock". */
export function formatClockSkew(skew: { offset_ms: number; drift: number }): string {
  if (skew.offset_ms === 0 && skew.drift === 0) return 'the real clock'
  const offset = skew.offset_ms === 0 ? 'on time' : `${Math.abs(skew.offset_ms)} ms ${skew.offset_ms > 0 ? 'ahead' : 'behind'}`
  const drift = skew.drift === 0 ? '' : `, ${skew.drift > 0 ? 'gaining' : 'losing'} ${+(Math.abs(skew.drift) * 100).toPrecision(6)} %`
  return offset + drift
}
