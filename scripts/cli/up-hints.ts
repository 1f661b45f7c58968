/**
 * The commands `hvlab up` suggests once the lab is up: about this lab — with its --dir
 * when it is not in the default data dir, and naming one of its own processes (a host
 * where it has one), never a name from the default topology it may not have.
 */
import { resolve } from 'node:path'
import { DEFAULT_LAB_DIR } from '../../shared/lab-layout.js'
import type { LabStatus } from '../controller/lab-controller.js'

/** `s` as one shell word: as it is when it is plain, else single-quoted. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** The suggested commands, each a full command line (`prefix` is `hvlab` or `npx hvlab`). */
export function upHints(status: Pick<LabStatus, 'processes'>, dir: string, prefix: string): string[] {
  const dirArg = resolve(dir) === resolve(DEFAULT_LAB_DIR) ? '' : ` --dir ${shellWord(dir)}`
  const victim = status.processes.find((p) => p.role === 'host') ?? status.processes[0]
  return [
    `${prefix} status${dirArg}`,
    ...(victim ? [`${prefix} kill ${victim.name}${dirArg}`] : []),
    `${prefix} events --follow${dirArg}`,
    `${prefix} down${dirArg}`,
  ]
}
