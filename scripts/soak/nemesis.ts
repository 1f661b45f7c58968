/**
 * What each fault of a schedule (fault-schedule.ts) does to a running lab, and how it is
 * healed, through the same `hvlab` commands a user types: kill -9 and restart, SIGSTOP and
 * SIGCONT, partitions and link shaping (`hvlab heal` returns to the topology's network),
 * clock skew, disk faults on an array. `inject` returns the processes the fault killed or
 * stopped, so the checker does not count their exits as crashes.
 */
import type { FaultPlan } from './fault-schedule.js'
import type { SoakLab } from './soak-lab.js'

/** How long a killed process may take to be seen down before its restart is asked anyway. */
const DOWN_WAIT_MS = 10_000

export async function injectFault(lab: SoakLab, f: FaultPlan): Promise<string[]> {
  if (f.kind === 'kill' || f.kind === 'array-kill' || f.kind === 'witness-kill') {
    await lab.must('kill', f.process)
    return [f.process]
  }
  if (f.kind === 'pause') {
    await lab.must('kill', f.process, '--signal', 'STOP')
    return [f.process]
  }
  if (f.kind === 'partition') {
    if (f.shape === 'sites') await lab.must('partition', f.a, f.b)
    else if (f.shape === 'isolate') await lab.must('partition', '--isolate', f.isolate!)
    else await lab.must('partition', `--${f.shape}`, '--seed', String(f.seed))
    return []
  }
  if (f.kind === 'wan') {
    const shape = ['--latency-ms', f.latency_ms, '--jitter-ms', f.jitter_ms, '--mbit', f.mbit, '--loss', f.loss].map(String)
    await lab.must('link', 'set', f.a, f.b, ...shape)
    return []
  }
  if (f.kind === 'clock') {
    await lab.must('clock', 'set', f.process, '--offset-ms', String(f.offset_ms), '--drift', String(f.drift))
    return []
  }
  await lab.must('array', 'disk', f.array, ...diskOptions(f))
  return []
}

function diskOptions(f: Extract<FaultPlan, { kind: 'disk' }>): string[] {
  return [
    ...(f.fsync_delay_ms !== null ? ['--fsync-delay-ms', String(f.fsync_delay_ms)] : []),
    ...(f.fsync_fails ? ['--fsync-fails'] : []),
    ...(f.full ? ['--full'] : []),
  ]
}

/** Undoes a fault. A killed process is restarted once the lab has seen it down. */
export async function healFault(lab: SoakLab, f: FaultPlan): Promise<void> {
  if (f.kind === 'kill' || f.kind === 'array-kill' || f.kind === 'witness-kill') {
    await lab.waitProcess(f.process, ['down'], DOWN_WAIT_MS)
    await lab.must('restart', f.process)
  } else if (f.kind === 'pause') {
    await lab.must('kill', f.process, '--signal', 'CONT')
  } else if (f.kind === 'partition' || f.kind === 'wan') {
    await lab.must('heal')
  } else if (f.kind === 'clock') {
    await lab.must('clock', 'set', f.process, '--offset-ms', '0', '--drift', '0')
  } else {
    // A restarted array has a healthy disk already; the command then sets what it has.
    await lab.must('array', 'disk', f.array)
  }
}
