/**
 * The `hvlab` command line: every command, built fresh for each run (a commander program
 * keeps the state of its parse). Every command has --help; the ones that report take --json.
 * Output goes to the current run's io (cli-io.ts); commander's own exits (--help, usage
 * errors) throw a CommandLineExit instead of ending the process, so runHvlab() decides.
 */
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Command, Option, type OutputConfiguration } from 'commander'
import { HvlabError, describeError } from '../../shared/errors.js'
import { prepareLabDir } from '../../shared/lab-dir.js'
import { labLayout } from '../../shared/lab-layout.js'
import { TS_LOADER_ARGS } from '../../shared/ts-runtime.js'
import { readRunningControl } from '../controller/control-file.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { SIGNALS, type SignalName } from '../controller/signals.js'
import type { TimelineEvent } from '../controller/timeline.js'
import { lastLines } from '../controller/log-tail.js'
import { currentIo, processIo } from './cli-io.js'
import { registerClusterCommands } from './cluster-commands.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, nameList, out, printResult } from './options.js'
import { registerStorageCommands } from './storage-commands.js'
import { registerCsvCommands } from './csv-commands.js'
import { registerGuestCommands } from './guest-commands.js'
import { formatEvent, formatStatus } from './format.js'

const READY_TIMEOUT_MS = 120_000

const list = nameList

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

/** Commander ended the parse (help shown, or a usage error already written): the run ends with `exitCode`. */
export class CommandLineExit extends Error {
  constructor(
    readonly exitCode: number,
    /** commander's id, e.g. commander.helpDisplayed, commander.unknownCommand */
    readonly reason: string,
  ) {
    super(`hvlab ended with ${exitCode} (${reason})`)
  }
}

/** What commander wraps help at when the output is not a terminal. */
const HELP_WIDTH_DEFAULT = 80

/** Commander's defaults: the process's streams, their widths and colours. */
const processOutput: OutputConfiguration = new Command().configureOutput()

/**
 * Writes to the current run's io. Help is wrapped and coloured as commander does for the
 * process's streams when the run uses them; a captured io is not a terminal (80 columns, no colour).
 */
/**
 * Commander's answer for the process's streams when the run uses them, else `otherwise`
 * (its defaults answer undefined off a terminal — 80 columns, colours off — whatever their types say).
 */
function onProcessStreams<T>(processAnswer: () => T | undefined, otherwise: T): T {
  return (currentIo() === processIo ? processAnswer() : undefined) ?? otherwise
}

const runOutput: OutputConfiguration = {
  writeOut: (s) => currentIo().stdout(s),
  writeErr: (s) => currentIo().stderr(s),
  outputError: (s, write) => write(s),
  getOutHelpWidth: () => onProcessStreams(() => processOutput.getOutHelpWidth?.(), HELP_WIDTH_DEFAULT),
  getErrHelpWidth: () => onProcessStreams(() => processOutput.getErrHelpWidth?.(), HELP_WIDTH_DEFAULT),
  getOutHasColors: () => onProcessStreams(() => processOutput.getOutHasColors?.(), false),
  getErrHasColors: () => onProcessStreams(() => processOutput.getErrHasColors?.(), false),
}

/** The whole `hvlab` program; build one per run. Output and exit settings are set first: subcommands copy them when created. */
export function buildProgram(): Command {
  const program = new Command('hvlab')
    .description('A multi-site Hyper-V HA/DR lab you can break on purpose: hosts, witness and arrays as real processes.')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput(runOutput)
    .exitOverride((e) => {
      throw new CommandLineExit(e.exitCode, e.code)
    })
  registerLabCommands(program)
  registerClusterCommands(program)
  registerStorageCommands(program)
  registerCsvCommands(program)
  registerGuestCommands(program)
  for (const group of commandGroups(program)) guideToSubcommand(group)
  return program
}

/** Every command below the program that has subcommands of its own (vm, array, array volume, …). */
function commandGroups(parent: Command): Command[] {
  return parent.commands.flatMap((c) => (c.commands.length > 0 ? [c, ...commandGroups(c)] : []))
}

/**
 * A group called without a subcommand it knows (`hvlab vm --dir X`, `hvlab vm bogus`) says
 * so and lists its subcommands, instead of commander's "unknown option" (the option may be
 * right, only misplaced). With nothing after it, it shows its help as before.
 */
function guideToSubcommand(group: Command): void {
  group
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      const path = commandPath(group)
      const names = group.commands.map((c) => c.name()).join(', ')
      const [given] = group.args
      if (given === undefined) group.help({ error: true })
      if (!given.startsWith('-'))
        throw new HvlabError('HVLAB_E_USAGE', `${path} has no subcommand ${given}; choose one of: ${names} (see \`${path} --help\`)`)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `${path} needs a subcommand before ${given}: one of ${names}; options go after it, e.g. \`${path} ${group.commands[0]!.name()} ${given} …\` (see \`${path} --help\`)`,
      )
    })
}

function commandPath(c: Command): string {
  return c.parent ? `${commandPath(c.parent)} ${c.name()}` : c.name()
}

function registerLabCommands(program: Command): void {
  program
    .command('up')
    .description(
      'start a lab: in the foreground (Ctrl-C stops it), or with --detach in the background once every process is healthy and the failover cluster has formed',
    )
    .option('--topology <file>', 'topology file (JSON); default: topologies/two-site.json')
    .addOption(dirOption())
    .option('--detach', 'return once the lab is healthy and its cluster formed, leaving it running')
    .option('--json', 'print the status as JSON once ready')
    .action(async (o: { topology?: string; dir: string; detach?: boolean; json?: boolean }) => {
      // Loaded here, not at the top: the other commands start faster without them.
      const { loadTopology, DEFAULT_TOPOLOGY_FILE } = await import('../../shared/topology.js')
      const topologyFile = o.topology ?? DEFAULT_TOPOLOGY_FILE
      loadTopology(topologyFile) // validate before anything starts, with a clear error
      const layout = labLayout(o.dir)
      if (o.detach) {
        const running = readRunningControl(layout)
        if (running)
          throw new HvlabError(
            'HVLAB_E_STATE',
            `a lab is already running in ${layout.root} (controller pid ${running.pid}); \`hvlab down --dir ${o.dir}\` stops it`,
          )
        prepareLabDir(layout) // 0700, and refused when another user owns it or may write it
        const logFd = openSync(layout.controllerStderr, 'a')
        const entry = fileURLToPath(new URL('../controller/main.ts', import.meta.url))
        const child = spawn(process.execPath, [...TS_LOADER_ARGS, entry, '--dir', layout.root, '--topology', topologyFile], {
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
            () =>
              `${formatStatus(status)}\n\nThe lab runs in the background. Try: hvlab status · hvlab kill host-a1 · hvlab events --follow · hvlab down`,
          )
        } catch (e) {
          const tail = lastLines(layout.controllerStderr, 10)
          throw new HvlabError('HVLAB_E_LAB', `${describeError(e)}${tail.length ? `\ncontroller said:\n  ${tail.join('\n  ')}` : ''}`)
        }
        return
      }
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
          `Lab ${status.lab.name} is up. In another terminal: npx hvlab status · npx hvlab kill host-a1 · npx hvlab events --follow · npx hvlab down\nPress Ctrl-C to stop every process.\n`,
        )
      } catch (e) {
        if (labRunning) io.stderr(`hvlab: ${describeError(e)}\n`)
      }
      const end = await lab.stopped
      if (end.aborted) throw new HvlabError('HVLAB_E_LAB', `the lab was aborted: ${end.reason}; its logs and data stay in ${layout.root}`)
      out('lab stopped; its logs and data stay in ' + layout.root)
    })

  program
    .command('status')
    .description('every process: name, role, site, pid, state (up/down/starting/paused), uptime, connected peers, metrics endpoint')
    .addOption(dirOption())
    .option('--json', 'machine-readable output: {"lab":{…},"processes":[{"name","role","site","pid","state",…}],"partitions":[…]}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const status = await ControlClient.forDir(o.dir).get<LabStatus>('/v1/status')
      printResult(o.json, status, () => formatStatus(status))
    })

  program
    .command('kill')
    .description('fault injection: send a signal to one process (KILL is kill -9; STOP pauses it, CONT resumes it)')
    .argument('<name>', 'process name, e.g. host-a1')
    .addOption(new Option('--signal <signal>', 'signal to send').choices(SIGNALS).default('KILL'))
    .addOption(dirOption())
    .option('--json', 'print the process’s new status as JSON')
    .action(async (name: string, o: { signal: SignalName; dir: string; json?: boolean }) => {
      const p = await ControlClient.forDir(o.dir).post<{ name: string; state: string }>(`/v1/processes/${encodeURIComponent(name)}/kill`, {
        signal: o.signal,
      })
      printResult(
        o.json,
        p,
        () =>
          `sent SIG${o.signal} to ${name}${o.signal === 'STOP' || o.signal === 'CONT' ? ` (now ${p.state})` : '; `hvlab status` shows it down once it has exited'}`,
      )
    })

  program
    .command('restart')
    .description('start a process again with its data intact (a running one is stopped first)')
    .argument('<name>', 'process name')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post(`/v1/processes/${encodeURIComponent(name)}/restart`)
      out(`restarting ${name}; \`hvlab status\` shows when it is up`)
    })

  program
    .command('partition')
    .description('cut the network between two groups of processes (names or sites, comma-separated), both ways')
    .argument('<a>', 'one side, e.g. site-a or host-a1,host-a2', list)
    .argument('<b>', 'the other side, e.g. site-b', list)
    .addOption(dirOption())
    .option('--json', 'print the partition as JSON')
    .action(async (a: string[], b: string[], o: { dir: string; json?: boolean }) => {
      const p = await ControlClient.forDir(o.dir).post<{ a: string[]; b: string[] }>('/v1/partition', { a, b })
      printResult(o.json, p, () => `partitioned ${p.a.join(',')}  ✕  ${p.b.join(',')}; \`hvlab heal\` removes it`)
    })

  program
    .command('heal')
    .description('remove every network partition')
    .addOption(dirOption())
    .action(async (o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post('/v1/heal')
      out('network healed')
    })

  program
    .command('events')
    .description('the lab-wide timeline: process started/exited/crashed, peer connected/lost, partitions, …')
    .addHelpText(
      'after',
      [
        '',
        "This shows the events the controller keeps in memory: the newest 10,000 within the topology's",
        'limits.timeline_memory_bytes_max (16 MiB by default). Every event is also written to the',
        'data dir as events.<n>.jsonl, rotated at events_file_bytes_max (16 MiB); the newest',
        'events_files_kept (4) rotated files are kept.',
        'At most event_followers_max (16) clients --follow at once; one that falls more than',
        'event_follower_queue_bytes_max (1 MiB) behind is cut off: it prints why and exits 1,',
        'and --after SEQ resumes from the last event it printed.',
      ].join('\n'),
    )
    .addOption(dirOption())
    .option('--follow', 'keep printing new events until Ctrl-C (exit 1 with the reason if the lab cuts this follower off)')
    .option('--json', 'one JSON object per line: {"seq","at_ms","kind","source","details"}')
    .option('--after <seq>', 'only events after this sequence number', intIn(0, Number.MAX_SAFE_INTEGER))
    .action(async (o: { dir: string; follow?: boolean; json?: boolean; after?: number }) => {
      const client = ControlClient.forDir(o.dir)
      const abort = new AbortController()
      // Ctrl-C ends --follow quietly (exit 0)
      const stopListening = currentIo().onInterrupt?.(() => abort.abort())
      try {
        await client.stream(
          `/v1/events?after=${o.after ?? 0}${o.follow ? '&follow=1' : ''}`,
          (e) => out(o.json ? JSON.stringify(e) : formatEvent(e as TimelineEvent)),
          abort.signal,
        )
      } finally {
        stopListening?.()
      }
    })

  program
    .command('down')
    .description('stop every process of the lab; its logs and data stay in the data dir for inspection')
    .addOption(dirOption())
    .action(async (o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post('/v1/down')
      out(`lab stopped; logs and data are in ${labLayout(o.dir).root}`)
    })
}
