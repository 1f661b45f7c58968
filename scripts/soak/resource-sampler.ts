/**
 * Samples each lab process's resident memory and open file descriptors from /proc (Linux),
 * for the checker's bound on leaks. A process that has gone between the status read and
 * the sample is skipped.
 */
import { readFileSync, readdirSync } from 'node:fs'
import type { RecordOf } from './history.js'

export interface SampledProcess {
  name: string
  role: string
  pid: number
}

/** Resident set in bytes and open fds of one process; null when it is gone. */
export function sampleProcess(pid: number): { rss_bytes: number; fds: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss_kib = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0)
    return { rss_bytes: rss_kib * 1024, fds: readdirSync(`/proc/${pid}/fd`).length }
  } catch {
    return null
  }
}

export function sampleAll(processes: readonly SampledProcess[], at_ms: number): RecordOf<'sample'>[] {
  return processes.flatMap((p) => {
    const s = sampleProcess(p.pid)
    return s ? [{ t: 'sample' as const, at_ms, process: p.name, role: p.role, ...s }] : []
  })
}
