/**
 * The checker's bounds on each process's resources, from the history's samples:
 * - memory: a host's resident set stays below RSS_BASE_BYTES plus the guest memory of every
 *   VM of the run (all of them may end up on one host); any other process below RSS_BASE_BYTES;
 * - open files: below FDS_MAX;
 * - no steady growth: in a run of at least GROWTH_CHECK_MIN_MS, the largest resident set of
 *   the last quarter is at most twice that of the first quarter plus GROWTH_SLACK_BYTES (a
 *   host's also plus twice the memory of every VM of the run: its memory follows the VMs
 *   the schedule moves onto it, each with a copy of its pages while it migrates), and its
 *   open files at most the first quarter's plus GROWTH_FDS_SLACK.
 * Also, per process, how often it crashed (`process.crashed`) and how often the schedule
 * killed it (`process.exited` that was asked for).
 */
import type { History } from './history.js'
import type { HistoryEvent } from './ownership-history.js'
import type { ProcessResources, Violation } from './report-types.js'
import { largest } from './stats.js'

const MIB = 1024 * 1024
export const RSS_BASE_BYTES = 768 * MIB
export const FDS_MAX = 1024
const GROWTH_CHECK_MIN_MS = 5 * 60_000
const GROWTH_SLACK_BYTES = 128 * MIB
const GROWTH_FDS_SLACK = 64

type Found = Omit<Violation, 'events_around'>
type Sample = History['samples'][number]

function byProcess(h: History): Map<string, Sample[]> {
  const m = new Map<string, Sample[]>()
  for (const s of h.samples) m.set(s.process, [...(m.get(s.process) ?? []), s])
  return m
}

const maxOf = (xs: readonly Sample[], k: 'rss_bytes' | 'fds'): number =>
  largest(
    xs.map((s) => s[k]),
    0,
  )

export function processResources(h: History, events: readonly HistoryEvent[]): ProcessResources[] {
  const count = (name: string, kind: string, requested?: boolean): number =>
    events.filter((e) => e.kind === kind && e.details.process === name && (requested === undefined || e.details.requested === requested))
      .length
  return [...byProcess(h)].map(([name, samples]) => ({
    name,
    rss_max_bytes: maxOf(samples, 'rss_bytes'),
    fds_max: maxOf(samples, 'fds'),
    crashes: count(name, 'process.crashed'),
    kills: h.faults.filter((f) => f.phase === 'start' && f.processes.includes(name)).length,
  }))
}

export function resourceViolations(h: History): Found[] {
  const out: Found[] = []
  const vmMemory = h.meta.vms.length * h.meta.vm_memory_mib * MIB
  for (const [name, samples] of byProcess(h)) {
    const rssBound = RSS_BASE_BYTES + (samples[0]!.role === 'host' ? vmMemory : 0)
    const worst = samples.reduce((a, b) => (b.rss_bytes > a.rss_bytes ? b : a))
    if (worst.rss_bytes > rssBound)
      out.push(leak(name, worst.at_ms, `resident memory ${mib(worst.rss_bytes)} MiB above its bound of ${mib(rssBound)} MiB`))
    const most = samples.reduce((a, b) => (b.fds > a.fds ? b : a))
    if (most.fds > FDS_MAX) out.push(leak(name, most.at_ms, `${most.fds} open files, above ${FDS_MAX}`))
    out.push(...growth(name, samples, samples[0]!.role === 'host' ? 2 * vmMemory : 0))
  }
  return out
}

function growth(name: string, samples: readonly Sample[], load_bytes: number): Found[] {
  const from = samples[0]!.at_ms
  const span = samples.at(-1)!.at_ms - from
  if (span < GROWTH_CHECK_MIN_MS) return []
  const first = samples.filter((s) => s.at_ms <= from + span / 4)
  const last = samples.filter((s) => s.at_ms >= from + (3 * span) / 4)
  const out: Found[] = []
  if (maxOf(last, 'rss_bytes') > 2 * maxOf(first, 'rss_bytes') + GROWTH_SLACK_BYTES + load_bytes)
    out.push(
      leak(name, last[0]!.at_ms, `resident memory grew from ${mib(maxOf(first, 'rss_bytes'))} to ${mib(maxOf(last, 'rss_bytes'))} MiB`),
    )
  if (maxOf(last, 'fds') > maxOf(first, 'fds') + GROWTH_FDS_SLACK)
    out.push(leak(name, last[0]!.at_ms, `open files grew from ${maxOf(first, 'fds')} to ${maxOf(last, 'fds')}`))
  return out
}

const mib = (bytes: number): number => Math.round(bytes / MIB)

function leak(process: string, at_ms: number, what: string): Found {
  return { kind: 'resource-leak', summary: `${process}: ${what}`, at_ms, vm: null, process }
}
