/**
 * `hvlab up`: start a lab from a topology — in the foreground (the controller runs in this
 * process, the timeline is printed, Ctrl-C stops every process) or with --detach as a
 * background controller, returning once every process is healthy and the cluster formed.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import type { Command } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import { prepareLabDir } from '../../shared/lab-dir.js'
import { labLayout, type LabLayout } from '../../shared/lab-layout.js'
import { bundlePath } from '../build/build.mjs'
import { readRunningControl } from '../controller/control-file.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { lastLines } from '../controller/log-tail.js'
import { currentIo } from './cli-io.js'
import { ControlClient } from './control-client.js'
import { formatEvent, formatStatus } from './format.js'
import { dirOption, out, printResult } from './options.js'
import { upHints } from './up-hints.js'

const READY_TIMEOUT_MS = 120_000

interface UpOptions {
  topology?: string
  dir: string
  detach?: boolean
  json?: boolean
}

export function registerUp(program: Command): void {
  program
    .command('up')
    .description(
      'start a lab: in the foreground (Ctrl-C stops it), or with --detach in the background once every process is healthy and every failover cluster has formed',
    )
    .option('--topology <file>', 'topology file (JSON); default: topologies/two-site.json')
    .addOption(dirOption())
    .option('--detach', 'return once the lab is healthy and each of its clusters formed, leaving it running')
    .option('--json', 'print the status as JSON once ready')
    .action(labUp)
}

async function labUp(o: UpOptions): Promise<void> {
  // Loaded here, not at the top: the other commands start faster without them.
  const { loadTopology, DEFAULT_TOPOLOGY_FILE } = await import('../../shared/topology.js')
  const topologyFile = o.topology ?? DEFAULT_TOPOLOGY_FILE
  loadTopology(topologyFile) // validate before anything starts, with a clear error
  const layout = labLayout(o.dir)
  if (o.detach) await labUpDetached(o, layout, topologyFile)
  else await labUpForeground(o, layout, topologyFile)
}

/** Starts the controller as a background process and returns once the lab is ready (or says why not, with the controller's last words). */
async function labUpDetached(o: UpOptions, layout: LabLayout, topologyFile: string): Promise<void> {
  const running = readRunningControl(layout)
  if (running)
    throw new HvlabError(
      'HVLAB_E_STATE',
      `a lab is already running in ${layout.root} (controller pid ${running.pid}); \`hvlab down --dir ${o.dir}\` stops it`,
    )
  prepareLabDir(layout) // 0700, and refused when another user owns it or may write it
  const logFd = openSync(layout.controllerStderr, 'a')
  const child = spawn(process.execPath, [bundlePath('controller'), '--dir', layout.root, '--topology', topologyFile], {
    detached: true,
    stdio: ['ignore', logFd, logFd],
  })
  closeSync(logFd)
  let alive = true
  child.on('exit', () => (alive = false))
  child.unref()
  try {
    const status = await waitUntilReady(
      () => ControlClient.forDir(o.dir),
      () => alive,
      READY_TIMEOUT_MS,
    )
    printResult(
      o.json,
      status,
      () => `${formatStatus(status)}\n\nThe lab runs in the background. Try: ${upHints(status, o.dir, 'hvlab').join(' · ')}`,
    )
  } catch (e) {
    const tail = lastLines(layout.controllerStderr, 10)
    throw new HvlabError('HVLAB_E_LAB', `${describeError(e)}${tail.length ? `\ncontroller said:\n  ${tail.join('\n  ')}` : ''}`)
  }
}

/** Runs the controller in this process, printing the timeline, until the lab stops. */
async function labUpForeground(o: UpOptions, layout: LabLayout, topologyFile: string): Promise<void> {
  const { runController } = await import('../controller/run.js')
  const lab = await runController({ dir: o.dir, topologyFile })
  const io = currentIo() // the timeline calls back from the controller's own work
  lab.controller.timeline.follow((e) => io.stdout(formatEvent(e) + '\n'))
  let labRunning = true
  void lab.stopped.then(() => (labRunning = false))
  try {
    const status = await waitUntilReady(
      () => ControlClient.forDir(o.dir),
      () => labRunning,
      READY_TIMEOUT_MS,
    )
    out(o.json ? JSON.stringify(status, null, 2) : `\n${formatStatus(status)}\n`)
    out(
      `Lab ${status.lab.name} is up. In another terminal: ${upHints(status, o.dir, 'npx hvlab').join(' · ')}\nPress Ctrl-C to stop every process.\n`,
    )
  } catch (e) {
    if (labRunning) io.stderr(`hvlab: ${describeError(e)}\n`)
  }
  const end = await lab.stopped
  if (end.aborted) throw new HvlabError('HVLAB_E_LAB', `the lab was aborted: ${end.reason}; its logs and data stay in ${layout.root}`)
  out('lab stopped; its logs and data stay in ' + layout.root)
}

async function waitUntilReady(client: () => ControlClient, isAlive: () => boolean, timeout_ms: number): Promise<LabStatus> {
  const deadline = Date.now() + timeout_ms
  let last: LabStatus | undefined
  while (Date.now() < deadline) {
    if (!isAlive()) throw new HvlabError('HVLAB_E_LAB', 'the lab controller stopped while the lab was starting')
    let status: LabStatus | undefined
    try {
      status = await client().get<LabStatus>('/v1/status')
    } catch (e) {
      // The controller not answering yet (HVLAB_E_LAB) is waited out; anything else ends the wait.
      if (e instanceof HvlabError && e.code !== 'HVLAB_E_LAB') throw e
    }
    if (status !== undefined) {
      last = status
      if (last.lab.healthy && last.lab.clusterFormed !== false) return last
      const dead = last.processes.find((p) => p.state === 'down' && p.lastExit && !p.lastExit.requested)
      if (dead) throw new HvlabError('HVLAB_E_LAB', `${dead.name} died while starting:\n${formatStatus(last)}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const what = last?.lab.healthy
    ? 'its failover cluster did not form (every host in one view, holding quorum)'
    : 'the lab did not become healthy'
  throw new HvlabError('HVLAB_E_TIMEOUT', `${what} within ${timeout_ms / 1000} s${last ? `:\n${formatStatus(last)}` : ''}`)
}
