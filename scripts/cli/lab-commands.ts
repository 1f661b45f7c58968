/**
 * The lab's own commands: `hvlab up`, `status`, `kill`, `restart`, `partition` (partition-command.ts), `link`
 * (link-commands.ts), `heal`, `clock` (clock-commands.ts),
 * `events` (events-command.ts), `down` and `reset` (lab-reset.ts) — the processes, the faults injected into them and their network,
 * and the lab-wide timeline. Each asks the lab controller through its control endpoint.
 */
import { type Command, Option } from 'commander'
import { labLayout } from '../../shared/lab-layout.js'
import { HvlabError } from '../../shared/errors.js'
import type { LabStatus, ProcessStatus } from '../controller/lab-controller.js'
import { SIGNALS, type SignalName } from '../controller/signals.js'
import { registerClockCommands } from './clock-commands.js'
import { ControlClient } from './control-client.js'
import { registerEvents } from './events-command.js'
import { formatStatus } from './format.js'
import { registerReset } from './lab-reset.js'
import { registerLinkCommands } from './link-commands.js'
import { registerPartition } from './partition-command.js'
import { registerUp } from './lab-up.js'
import { dirOption, out, printResult } from './options.js'

export function registerLabCommands(program: Command): void {
  registerUp(program)
  registerStatus(program)
  registerKill(program)
  registerRestart(program)
  registerPartition(program)
  registerLinkCommands(program)
  registerHeal(program)
  registerClockCommands(program)
  registerEvents(program)
  registerDown(program)
  registerReset(program)
}

function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'every process: name, role, site, pid, state (up/down/starting/paused), uptime, connected peers ("paused": stale), metrics endpoint; why each down process died',
    )
    .addOption(dirOption())
    .option('--json', 'machine-readable output: {"lab":{…},"processes":[{"name","role","site","pid","state",…}],"partitions":[…]}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const status = await ControlClient.forDir(o.dir).get<LabStatus>('/v1/status')
      printResult(o.json, status, () => formatStatus(status))
    })
}

function registerKill(program: Command): void {
  program
    .command('kill')
    .description(
      'fault injection: send a signal to one process, or to every process of a site (KILL is kill -9; STOP pauses, CONT resumes)',
    )
    .argument('[name]', 'process name, e.g. host-a1')
    .option('--site <site>', 'every process of this site instead, e.g. site-b (a whole site lost at once)')
    .addOption(new Option('--signal <signal>', 'signal to send').choices(SIGNALS).default('KILL'))
    .addOption(dirOption())
    .option('--json', 'print the new status of each process signalled as JSON')
    .action(async (name: string | undefined, o: { signal: SignalName; dir: string; json?: boolean; site?: string }) => {
      if ((name === undefined) === (o.site === undefined))
        throw new HvlabError('HVLAB_E_USAGE', 'name one process or one --site; see hvlab kill --help')
      const client = ControlClient.forDir(o.dir)
      const processes =
        o.site === undefined
          ? [await client.post<ProcessStatus>(`/v1/processes/${encodeURIComponent(name!)}/kill`, { signal: o.signal })]
          : (await client.post<{ processes: ProcessStatus[] }>(`/v1/sites/${encodeURIComponent(o.site)}/kill`, { signal: o.signal }))
              .processes
      const paused = o.signal === 'STOP' || o.signal === 'CONT'
      printResult(o.json, o.site === undefined ? processes[0] : processes, () =>
        processes
          .map(
            (p) => `sent SIG${o.signal} to ${p.name}${paused ? ` (now ${p.state})` : '; `hvlab status` shows it down once it has exited'}`,
          )
          .join('\n'),
      )
    })
}

function registerRestart(program: Command): void {
  program
    .command('restart')
    .description('start a process again with its data intact (a running one is stopped first)')
    .argument('<name>', 'process name')
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post(`/v1/processes/${encodeURIComponent(name)}/restart`)
      out(`restarting ${name}; \`hvlab status\` shows when it is up`)
    })
}

function registerHeal(program: Command): void {
  program
    .command('heal')
    .description("remove every network partition and link fault (`hvlab link set`): links return to the topology's network")
    .addOption(dirOption())
    .action(async (o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post('/v1/heal')
      out('network healed')
    })
}

function registerDown(program: Command): void {
  program
    .command('down')
    .description('stop every process of the lab; its logs and data stay in the data dir for inspection')
    .addOption(dirOption())
    .action(async (o: { dir: string }) => {
      await ControlClient.forDir(o.dir).post('/v1/down')
      out(`lab stopped; logs and data are in ${labLayout(o.dir).root}`)
    })
}
