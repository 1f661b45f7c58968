/**
 * The soak's checker: from a recorded history alone (history.ts) it decides whether the
 * lab kept its promises and measures what the design promises, as a SoakReport:
 * - no VM ran on two hosts at once (ownership-history.ts, from the hosts' own events);
 * - no array took a write from a stale owner, and no acknowledged write was lost or
 *   invented where the storage promises none (disk-history.ts: shared storage, a
 *   synchronous group while in sync), nor beyond its RPO under asynchronous replication
 *   (async-replication.ts);
 * - a VM replicated with Hyper-V Replica had each acknowledged write on its replica within
 *   the RPO unless a fault on the path held it back, and its replica ended equal to its
 *   disk (replica-check.ts);
 * - every VM answered again within the recovery bound once the faults stopped, and the
 *   hosts ended in one membership;
 * - no process crashed (`process.crashed`: an exit nobody asked for), and each process's
 *   memory and open files stayed within their bounds (resource-bounds.ts);
 * and, per fault, the detection time, each interrupted VM's RTO as its client saw it, the
 * failovers that followed and the acknowledged writes lost that go to it (loss-attribution.ts); per migration, the blackout its source reported and the one
 * its client saw.
 */
import { ClientHistory } from './client-history.js'
import { diskProblems, diskWrites, staleWrites, type VmWriteProblem } from './disk-history.js'
import type { History, RecordOf } from './history.js'
import { lossByFault, noLoss, type LostWrite } from './loss-attribution.js'
import { doubleOwners, vmRuns, type HistoryEvent } from './ownership-history.js'
import { checkReplication } from './replica-check.js'
import type { EventExcerpt, FaultOutcome, MigrationOutcome, SoakReport, Violation } from './report-types.js'
import { resourceViolations, processResources } from './resource-bounds.js'
import { durationStats, largest } from './stats.js'

/**
 * Two runs of one VM may overlap this long. A host woken past its lease stops its VMs in its
 * first guest timer (agent/vm/guest-clock.ts), but the history sees its run from the
 * controller's SIGCONT to the host's own stop event: the time the woken process takes to be
 * scheduled and run that timer (7 ms on an idle machine, more on a busy one).
 */
export const DOUBLE_OWNER_TOLERANCE_MS = 150
/** Events shown either side of a violation. */
const AROUND_MS = 3_000
const AROUND_EVENTS_MAX = 30

type Event = RecordOf<'event'>

/** Checks a whole history. */
export function checkHistory(h: History): SoakReport {
  const client = new ClientHistory(h.pings, h.meta.vms)
  const events: HistoryEvent[] = [...h.events].sort((a, b) => a.at_ms - b.at_ms || a.seq - b.seq)
  const gap_ms = gapThreshold(h)
  const writes = diskWrites(h)
  const runs = vmRuns(events)
  const problems = diskProblems(writes, h)
  const replication = checkReplication(h, writes)
  const violations = [
    ...ownershipViolations(events),
    ...writeViolations(h, writes, problems),
    ...replication.violations,
    ...recoveryViolations(h, client, events),
    ...crashViolations(events),
    ...resourceViolations(h),
  ].map((v) => ({ ...v, events_around: around(h.events, v.at_ms) }))
  const faults = faultOutcomes(h, client, events, gap_ms, lostWrites(problems, h.meta.block_size_bytes))
  const migrations = migrationOutcomes(events, client)
  const lost = problems.filter((p) => p.problem.kind === 'lost').length
  return {
    format: 1,
    verdict: violations.length === 0 ? 'pass' : 'fail',
    seed: h.meta.seed,
    reproduce: h.meta.reproduce,
    topology: h.meta.topology,
    faults_enabled: h.meta.faults,
    vms: h.meta.vms,
    started_ms: h.meta.started_ms,
    ended_ms: h.end?.ended_ms ?? lastTime(h),
    faults_stopped_ms: faultsStopped(h),
    recovery_bound_ms: h.meta.recovery_bound_ms,
    summary: {
      faults: faults.length,
      operator_actions: h.ops.length,
      client_requests: h.pings.length,
      client_replies: h.pings.filter((p) => p.outcome === 'reply').length,
      disk_writes: writes.length,
      disk_writes_acked: writes.filter((w) => w.outcome === 'acked').length,
      acked_writes_lost: lost,
      acked_bytes_lost: lost * h.meta.block_size_bytes,
      writes_lost_allowed: problems.filter((p) => p.problem.kind === 'lost-allowed').length,
      violations: violations.length,
      detection: durationStats(faults.flatMap((f) => (f.detection_ms === null ? [] : [f.detection_ms]))),
      rto: durationStats(faults.flatMap((f) => f.rto_ms_by_vm.map((r) => r.rto_ms))),
      blackout: durationStats(migrations.flatMap((m) => (m.ok && m.reported_blackout_ms !== null ? [m.reported_blackout_ms] : []))),
      client_blackout: durationStats(migrations.flatMap((m) => (m.ok && m.client_gap_ms !== null ? [m.client_gap_ms] : []))),
    },
    violations,
    faults,
    migrations,
    operator_actions: h.ops.map((o) => ({
      kind: o.kind,
      target: o.target,
      start_ms: o.start_ms,
      end_ms: o.end_ms,
      ok: o.ok,
      error_code: o.error_code,
      said: o.said ?? null,
    })),
    replication: replication.outcomes,
    processes: processResources(h, events),
    series: client.vms.map((vm) => client.series(vm, gap_ms, runsOf(runs, vm))),
  }
}

/** A gap the clients see as an interruption: three ping intervals without a reply. */
const gapThreshold = (h: History): number => 3 * h.meta.ping_interval_ms

function lastTime(h: History): number {
  return largest([...h.events.map((e) => e.at_ms), ...h.pings.map((p) => p.sent_ms)], h.meta.started_ms)
}

/** When the schedule stopped and healed everything (the end record), else after the last heal. */
function faultsStopped(h: History): number {
  return (
    h.end?.faults_stopped_ms ??
    largest(
      h.faults.map((f) => f.at_ms),
      h.meta.started_ms,
    )
  )
}

type Found = Omit<Violation, 'events_around'>

function ownershipViolations(events: readonly HistoryEvent[]): Found[] {
  return doubleOwners(events, DOUBLE_OWNER_TOLERANCE_MS).map((d) => ({
    kind: 'double-owner',
    summary: `vm ${d.vm} ran on ${d.hosts[0]} and ${d.hosts[1]} at once for ${Math.round(d.to_ms - d.from_ms)} ms`,
    at_ms: d.from_ms,
    vm: d.vm,
    process: null,
  }))
}

function writeViolations(h: History, writes: ReturnType<typeof diskWrites>, problems: readonly VmWriteProblem[]): Found[] {
  const stale: Found[] = staleWrites(writes).map((s) => ({
    kind: 'stale-write-accepted',
    summary: `${s.array} acknowledged vm ${s.vm}'s write (epoch ${s.stale.epoch}, from ${s.stale.host}) issued after it had acknowledged one with epoch ${s.newer.epoch} (from ${s.newer.host})`,
    at_ms: s.stale.at_ms,
    vm: s.vm,
    process: s.array,
  }))
  const firstIssue = (vm: string, disk: number, block: number): number =>
    writes.find((w) => w.vm === vm && (w.disk ?? 0) === disk && w.block === block)?.at_ms ?? h.meta.started_ms
  const lost: Found[] = problems.flatMap(({ vm, disk, problem: p, beyond_rpo }) => {
    const where = `vm ${vm}${disk === 0 ? '' : ` disk ${disk}`} block ${p.block}`
    return p.kind === 'lost-allowed'
      ? []
      : [
          {
            kind: p.kind === 'invented' ? ('write-invented' as const) : beyond_rpo ? ('rpo-breached' as const) : ('write-lost' as const),
            summary:
              p.kind === 'invented'
                ? `${where}: holds data no write put there`
                : beyond_rpo
                  ? `${where}: a failover lost a write acknowledged later than the RPO after the secondary's last consistent point (asynchronous replication fell further behind than it promises)`
                  : `${where}: an acknowledged write is gone (the block holds an older one or zeros)`,
            at_ms: firstIssue(vm, disk, p.block),
            vm,
            process: null,
          },
        ]
  })
  return [...stale, ...lost]
}

function recoveryViolations(h: History, client: ClientHistory, events: readonly HistoryEvent[]): Found[] {
  const stopped_ms = faultsStopped(h)
  const bound = h.meta.recovery_bound_ms
  const out: Found[] = []
  for (const vm of h.meta.vms) {
    const first = client.firstReplyAfter(vm, stopped_ms)
    if (first === null || first - stopped_ms > bound)
      out.push({
        kind: 'not-recovered',
        summary:
          first === null
            ? `vm ${vm} never answered after the faults stopped`
            : `vm ${vm} answered ${Math.round(first - stopped_ms)} ms after the faults stopped, beyond the ${bound} ms bound`,
        at_ms: stopped_ms,
        vm,
        process: null,
      })
  }
  const views = lastViews(events)
  const epochs = new Set([...views.values()].map((e) => e.details.epoch))
  if (epochs.size > 1)
    out.push({
      kind: 'split-membership',
      summary: `the hosts ended in ${epochs.size} memberships: ${[...views].map(([host, e]) => `${host} epoch ${String(e.details.epoch)}`).join(', ')}`,
      at_ms: h.end?.ended_ms ?? stopped_ms,
      vm: null,
      process: null,
    })
  return out
}

/** Each host's last `cluster.view-changed`. */
function lastViews(events: readonly HistoryEvent[]): Map<string, HistoryEvent> {
  const last = new Map<string, HistoryEvent>()
  for (const e of events) if (e.kind === 'cluster.view-changed') last.set(e.source, e)
  return last
}

function crashViolations(events: readonly HistoryEvent[]): Found[] {
  return events
    .filter((e) => e.kind === 'process.crashed')
    .map((e) => ({
      kind: 'crash' as const,
      summary: `${String(e.details.process)} exited without being asked (code ${String(e.details.code)}, signal ${String(e.details.signal)})`,
      at_ms: e.at_ms,
      vm: null,
      process: typeof e.details.process === 'string' ? e.details.process : null,
    }))
}

function around(events: readonly Event[], at_ms: number): EventExcerpt[] {
  return events
    .filter((e) => Math.abs(e.at_ms - at_ms) <= AROUND_MS)
    .sort((a, b) => Math.abs(a.at_ms - at_ms) - Math.abs(b.at_ms - at_ms))
    .slice(0, AROUND_EVENTS_MAX)
    .sort((a, b) => a.at_ms - b.at_ms)
    .map((e) => ({ at_ms: e.at_ms, source: e.source, kind: e.kind, details: JSON.stringify(e.details).slice(0, 300) }))
}

/** Each lost acknowledged write (one per block the write checker found lost), with its bytes. */
function lostWrites(problems: readonly VmWriteProblem[], block_size_bytes: number): LostWrite[] {
  return problems.flatMap(({ problem, lost_acked_ms }) =>
    problem.kind === 'invented' || lost_acked_ms === null
      ? []
      : [{ acked_ms: lost_acked_ms, bytes: block_size_bytes, allowed: problem.kind === 'lost-allowed' }],
  )
}

function faultOutcomes(
  h: History,
  client: ClientHistory,
  events: readonly HistoryEvent[],
  gap_ms: number,
  lost: readonly LostWrite[],
): FaultOutcome[] {
  const starts = h.faults.filter((f) => f.phase === 'start').sort((a, b) => a.at_ms - b.at_ms)
  const end_ms = h.end?.ended_ms ?? lastTime(h)
  const healOf = (id: number) => h.faults.find((x) => x.phase === 'heal' && x.id === id)
  const losses = lossByFault(
    starts.map((f) => ({ id: f.id, start_ms: f.at_ms, heal_ms: healOf(f.id)?.at_ms ?? null })),
    lost,
  )
  return starts.map((f, i) => {
    const heal = healOf(f.id)
    const until_ms = starts[i + 1]?.at_ms ?? end_ms
    const within = events.filter((e) => e.at_ms >= f.at_ms && e.at_ms < until_ms)
    const lost = within.find((e) => e.kind === 'node.lost')
    return {
      id: f.id,
      kind: f.kind,
      target: f.target,
      start_ms: f.at_ms,
      heal_ms: heal?.at_ms ?? null,
      detection_ms: lost ? lost.at_ms - f.at_ms : null,
      rto_ms_by_vm: client.vms.flatMap((vm) => {
        // A gap the fault caused begins before it was healed (a move in the quiet after is not its doing).
        const rto_ms = client.longestGapWithin(vm, f.at_ms, heal?.at_ms ?? until_ms, gap_ms)
        return rto_ms > 0 ? [{ vm, rto_ms }] : []
      }),
      failovers: within.filter((e) => e.kind === 'role.failed-over').length,
      ...(losses.get(f.id) ?? noLoss()),
    }
  })
}

function migrationOutcomes(events: readonly HistoryEvent[], client: ClientHistory): MigrationOutcome[] {
  const open = new Map<string, HistoryEvent>()
  const out: MigrationOutcome[] = []
  for (const e of events) {
    const vm = e.details.vm
    if (typeof vm !== 'string') continue
    if (e.kind === 'vm.migration-started') open.set(`${e.source}\u0000${vm}`, e)
    if (e.kind !== 'vm.migration-ended') continue
    const start = open.get(`${e.source}\u0000${vm}`)
    if (!start) continue
    open.delete(`${e.source}\u0000${vm}`)
    const ok = e.details.outcome === 'completed'
    // A quick move's guest is down for the whole copy: its downtime is the blackout.
    const blackout = e.details.mode === 'quick' ? (e.details.downtime_ms ?? e.details.blackout_ms) : e.details.blackout_ms
    out.push({
      vm,
      from: e.source,
      to: String(e.details.to),
      mode: String(e.details.mode),
      start_ms: start.at_ms,
      end_ms: e.at_ms,
      ok,
      reported_blackout_ms: typeof blackout === 'number' ? blackout : null,
      client_gap_ms: ok ? client.longestGapWithin(vm, start.at_ms, e.at_ms, 0) || null : null,
    })
  }
  return out
}

function runsOf(runs: ReturnType<typeof vmRuns>, vm: string): [number, number, string][] {
  return runs.filter((r) => r.vm === vm).map((r) => [r.from_ms, r.to_ms, r.host] as [number, number, string])
}
