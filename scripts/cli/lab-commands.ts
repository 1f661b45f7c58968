/**
 * The lab's own commands: `hvlab up`, `status`, `kill`, `restart`, `partition`, `link`
 * (link-commands.ts), `heal`, `clock` (clock-commands.ts),
 * `events` (events-command.ts), `down` and `reset` (lab-reset.ts) — the processes, the faults injected into them and their network,
 * and the lab-wide timeline. Each asks the lab controller through its control endpoint.
 */
import { type Command, Option } from 'commander'
import { labLayout } from '../../shared/lab-layout.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { SIGNALS, type SignalName } from '../controller/signals.js'
import { registerClockCommands } from './clock-commands.js'
import { ControlClient } from './control-client.js'
import { registerEvents } from './events-command.js'
import { formatStatus } from './format.js'
import { registerReset } from './lab-reset.js'
import { registerLinkCommands } from './link-commands.js'
import { registerUp } from './lab-up.js'
import { dirOption, nameList, out, printResult } from './options.js'

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

function registerPartition(program: Command): void {
  program
    .command('partition')
    .description(
      'cut the network between two groups of processes (names or sites, comma-separated): both ways (their connections are cut at once), or --one-way',
    )
    .argument('<a>', 'one side, e.g. site-a or host-a1,host-a2', nameList)
    .argument('<b>', 'the other side, e.g. site-b', nameList)
    .option(
      '--one-way',
      'only what <a> sends <b> is lost: <b> hears nothing from <a> (not even pings) while <a> still hears <b>; open connections live on until a side gives up on them, no new one can be made',
    )
    .addOption(dirOption())
    .option('--json', 'print the partition as JSON')
    .action(async (a: string[], b: string[], o: { dir: string; json?: boolean; oneWay?: boolean }) => {
      const p = await ControlClient.forDir(o.dir).post<{ a: string[]; b: string[]; one_way: boolean }>('/v1/partition', {
        a,
        b,
        one_way: o.oneWay === true,
      })
      const sign = p.one_way ? '→ ✕' : '✕'
      printResult(o.json, p, () => `partitioned ${p.a.join(',')}  ${sign}  ${p.b.join(',')}; \`hvlab heal\` removes it`)
    })
}

function registerHeal(program: Command): void {
  program
    .command('heal')
    .description('remove every network partition and link fault (`hvlab link set`)')
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
