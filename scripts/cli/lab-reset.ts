/**
 * `hvlab reset`: stops the lab of a data dir if it runs and deletes what the lab put
 * there — its processes' data (VM roles, cluster database, the arrays' volumes), the
 * timeline, the logs, its secret and certificates, topology copy, control file and validation report — after
 * the person at the terminal confirms (or --yes). It deletes only the entries a lab makes
 * (shared/lab-layout.ts), only in a dir that is a lab's data dir, leaves anything else
 * and says what it removed and what it left.
 */
import { readdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { checkLabDir } from '../../shared/lab-dir.js'
import { labLayout, rotatedPaths, type LabLayout } from '../../shared/lab-layout.js'
import { readRunningControl } from '../controller/control-file.js'
import { currentIo } from './cli-io.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'

/** How long reset waits for a running lab's controller to exit after `down`. */
const STOP_WAIT_MS = 30_000

export function registerReset(program: Command): void {
  program
    .command('reset')
    .description("stop the lab if it runs and delete its data dir's contents: VM roles, arrays' volumes, timeline, logs (asks first)")
    .addOption(dirOption())
    .option('--yes', 'do not ask (required when stdin is not a terminal)')
    .action(labReset)
}

/** What a lab keeps in its data dir, by entry name: every other entry is not the lab's. */
export interface LabEntries {
  /** Entry names in the data dir that are the lab's. */
  ours: string[]
  /** Entry names that are not: left alone. */
  others: string[]
}

/** The entries of `layout.root` that are the lab's; throws HVLAB_E_STATE when the dir is not a lab's data dir. */
export function labEntries(layout: LabLayout): LabEntries {
  const names = readdirSync(layout.root)
  const fixed = [layout.secret, layout.pki, layout.control, layout.topology, layout.logs, layout.data, layout.validationReport].map((p) =>
    basename(p),
  )
  const events = rotatedPaths(layout.events).map((p) => basename(p))
  const isOurs = (n: string): boolean => fixed.includes(n) || events.includes(n)
  if (!names.includes(basename(layout.secret)) || !names.some((n) => n !== basename(layout.secret) && isOurs(n)))
    throw new HvlabError(
      'HVLAB_E_STATE',
      `${layout.root} is not a lab's data dir (no secret with logs, data or a timeline in it); nothing was deleted. Pass the --dir of a lab`,
    )
  return { ours: names.filter(isOurs), others: names.filter((n) => !isOurs(n)) }
}

/** The lab's name from the topology copy in its data dir, when it has one. */
function labName(layout: LabLayout): string | undefined {
  try {
    const name = (JSON.parse(readFileSync(layout.topology, 'utf8')) as { name?: unknown }).name
    return typeof name === 'string' && name.length > 0 ? name : undefined
  } catch {
    return undefined
  }
}

async function labReset(o: { dir: string; yes?: boolean }): Promise<void> {
  const layout = labLayout(o.dir)
  if (!statSync(layout.root, { throwIfNoEntry: false }))
    throw new HvlabError('HVLAB_E_NOT_FOUND', `${layout.root} does not exist; nothing to reset`)
  checkLabDir(layout.root)
  labEntries(layout) // refused before asking when it is not a lab's dir
  const name = labName(layout)
  if (!o.yes) await confirm(layout, name)
  const stopped = await stopIfRunning(o.dir, layout)
  const { ours, others } = labEntries(layout)
  const removed = ours.map((n) => describeEntry(layout, n))
  for (const n of ours) rmSync(join(layout.root, n), { recursive: true, force: true })
  if (others.length === 0) rmdirSync(layout.root)
  out(
    [
      `reset lab ${name ?? '(unnamed)'} in ${layout.root}${stopped ? ': stopped it' : ''}`,
      `removed: ${removed.join('; ')}`,
      others.length ? `left alone (not the lab's): ${others.join(', ')}` : `removed the empty data dir`,
    ].join('\n'),
  )
}

/** Asks the person at the terminal; without one, --yes is required (a usage error naming it). */
async function confirm(layout: LabLayout, name: string | undefined): Promise<void> {
  const ask = currentIo().ask
  if (!ask)
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `hvlab reset deletes the lab in ${layout.root} and stdin is not a terminal to confirm it: pass --yes to reset without asking`,
    )
  const expected = name ?? 'y'
  const question = name
    ? `This stops the lab ${name} and deletes its VM roles, volumes, timeline and logs in ${layout.root}.\nType the lab's name (${name}) to confirm: `
    : `This stops the lab and deletes its data, timeline and logs in ${layout.root}. Delete? [y/N] `
  const answer = (await ask(question)).trim()
  if (answer !== expected)
    throw new HvlabError('HVLAB_E_REFUSED', `not confirmed (${JSON.stringify(answer.slice(0, 40))}); nothing was deleted`)
}

/** Stops the lab of `dir` when it runs, and waits until its controller is gone; whether it ran. */
async function stopIfRunning(dir: string, layout: LabLayout): Promise<boolean> {
  if (!readRunningControl(layout)) return false
  await ControlClient.forDir(dir).post('/v1/down')
  const deadline = Date.now() + STOP_WAIT_MS
  while (readRunningControl(layout)) {
    if (Date.now() > deadline)
      throw new HvlabError('HVLAB_E_TIMEOUT', `the lab in ${layout.root} did not stop within ${STOP_WAIT_MS / 1000} s; nothing was deleted`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return true
}

/** One removed entry for the summary: what it held. */
function describeEntry(layout: LabLayout, name: string): string {
  const path = join(layout.root, name)
  const inside = (): string[] => (statSync(path).isDirectory() ? readdirSync(path).sort() : [])
  if (path === layout.data) {
    const processes = inside()
    return `data/ (${processes.length ? processes.join(', ') : 'empty'}: VM roles, cluster database, array volumes)`
  }
  if (path === layout.logs) return `logs/ (${inside().length} files)`
  return name
}
