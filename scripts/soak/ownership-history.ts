/**
 * The ownership checker of a history (issue 13's soak): no VM ran on two hosts at the same
 * time. It reads the lab's timeline, whose events carry the emitting process's wall clock
 * (one machine's clock, not the lab's skewable process clocks), and rebuilds when each VM
 * ran on each host:
 * - a host's VM runs from its `vm.started` or `vm.arrived` to its `vm.stopped` or `vm.departed`,
 *   or to the host's `role.stopped-no-quorum` that names it;
 * - a host killed or exited (`process.exited`/`process.crashed`) runs nothing from then on;
 * - a paused host (`process.signalled` SIGSTOP) runs nothing until SIGCONT, when the VMs it
 *   had run again (the zombie that wakes up still thinking it owns them);
 * - a live migration's hand-over counts at the destination's `vm.arrived`: the source's run
 *   ends there even if its `vm.departed` is stamped a little later (the migration protocol
 *   pauses the source before the destination resumes; its simulations prove that part).
 * Two runs of one VM on different hosts that overlap by more than `tolerance_ms` are a violation.
 */

export interface HistoryEvent {
  at_ms: number
  kind: string
  source: string
  details: Readonly<Record<string, unknown>>
}

export interface Run {
  vm: string
  host: string
  from_ms: number
  to_ms: number
}

export interface DoubleOwner {
  kind: 'double-owner'
  vm: string
  /** Sorted. */
  hosts: [string, string]
  /** The overlap of the two runs. */
  from_ms: number
  to_ms: number
}

const key = (vm: string, host: string): string => `${vm}\u0000${host}`

/** Every run of every VM, in the order they ended; runs still open end at the last event. */
export function vmRuns(events: readonly HistoryEvent[]): Run[] {
  const open = new Map<string, Run>()
  const frozen = new Map<string, Run[]>()
  const runs: Run[] = []
  const close = (k: string, at_ms: number): void => {
    const r = open.get(k)
    if (!r) return
    open.delete(k)
    runs.push({ ...r, to_ms: at_ms })
  }
  const ofHost = (host: string): string[] => [...open.values()].filter((r) => r.host === host).map((r) => key(r.vm, r.host))
  for (const e of events) {
    const vm = typeof e.details.vm === 'string' ? e.details.vm : undefined
    const process = typeof e.details.process === 'string' ? e.details.process : undefined
    if ((e.kind === 'vm.started' || e.kind === 'vm.arrived') && vm) {
      if (e.kind === 'vm.arrived' && typeof e.details.from === 'string') close(key(vm, e.details.from), e.at_ms)
      if (!open.has(key(vm, e.source))) open.set(key(vm, e.source), { vm, host: e.source, from_ms: e.at_ms, to_ms: e.at_ms })
    } else if ((e.kind === 'vm.stopped' || e.kind === 'vm.departed') && vm) {
      close(key(vm, e.source), e.at_ms)
    } else if (e.kind === 'role.stopped-no-quorum' && Array.isArray(e.details.vms)) {
      for (const name of e.details.vms) if (typeof name === 'string') close(key(name, e.source), e.at_ms)
    } else if ((e.kind === 'process.exited' || e.kind === 'process.crashed') && process) {
      for (const k of ofHost(process)) close(k, e.at_ms)
      frozen.delete(process)
    } else if (e.kind === 'process.signalled' && process && e.details.signal === 'SIGSTOP') {
      const paused = ofHost(process).map((k) => open.get(k)!)
      for (const k of ofHost(process)) close(k, e.at_ms)
      frozen.set(process, paused)
    } else if (e.kind === 'process.signalled' && process && e.details.signal === 'SIGCONT') {
      for (const r of frozen.get(process) ?? []) open.set(key(r.vm, r.host), { ...r, from_ms: e.at_ms })
      frozen.delete(process)
    }
  }
  const end_ms = events.at(-1)?.at_ms ?? 0
  for (const k of [...open.keys()]) close(k, end_ms)
  return runs
}

/** Each overlap of two runs of one VM on different hosts by more than `tolerance_ms`. */
export function doubleOwners(events: readonly HistoryEvent[], tolerance_ms = 0): DoubleOwner[] {
  const byVm = new Map<string, Run[]>()
  for (const r of vmRuns(events)) byVm.set(r.vm, [...(byVm.get(r.vm) ?? []), r])
  const out: DoubleOwner[] = []
  for (const [vm, runs] of byVm) {
    for (let i = 0; i < runs.length; i++) {
      for (let j = i + 1; j < runs.length; j++) {
        const a = runs[i]!
        const b = runs[j]!
        const from_ms = Math.max(a.from_ms, b.from_ms)
        const to_ms = Math.min(a.to_ms, b.to_ms)
        if (a.host !== b.host && to_ms - from_ms > tolerance_ms)
          out.push({ kind: 'double-owner', vm, hosts: [a.host, b.host].sort() as [string, string], from_ms, to_ms })
      }
    }
  }
  return out
}
