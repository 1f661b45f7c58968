/**
 * The control file a running lab controller leaves in its data dir (`control.json`):
 * where it listens. The CLI finds a lab through it; a file whose controller is dead
 * does not count.
 */
import { readFileSync } from 'node:fs'
import type { LabLayout } from '../../shared/lab-layout.js'

export interface ControlFile {
  pid: number
  httpPort: number
  peerPort: number
  topology: string
  started_ms: number
}

/** The control file of a lab whose controller is still alive, or undefined. */
export function readRunningControl(layout: LabLayout): ControlFile | undefined {
  let control: ControlFile
  try {
    control = JSON.parse(readFileSync(layout.control, 'utf8')) as ControlFile
  } catch {
    return undefined
  }
  if (!Number.isInteger(control.pid) || !Number.isInteger(control.httpPort)) return undefined
  try {
    process.kill(control.pid, 0)
    return control
  } catch {
    return undefined
  }
}
