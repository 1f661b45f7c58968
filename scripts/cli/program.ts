/**
 * The `hvlab` command line: every command, built fresh for each run (a commander program
 * keeps the state of its parse). Every command has --help; the ones that report take --json.
 * Output goes to the current run's io (cli-io.ts); commander's own exits (--help, usage
 * errors) throw a CommandLineExit instead of ending the process, so runHvlab() decides.
 */
import { Command, InvalidArgumentError, type OutputConfiguration } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { registerArrayCommands } from './array-commands.js'
import { currentIo, processIo } from './cli-io.js'
import { chooseCluster } from './cluster-choice.js'
import { registerClusterCommands } from './cluster-commands.js'
import { registerCsvCommands } from './csv-commands.js'
import { registerLabCommands } from './lab-commands.js'
import { registerNodeCommands } from './node-commands.js'
import { registerRcopyCommands } from './rcopy-commands.js'
import { registerReplicaCommands } from './replica-commands.js'
import { registerSoakCommands } from './soak-commands.js'
import { registerVmCommands } from './vm-commands.js'

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
 * Commander's answer for the process's streams when the run uses them, else `otherwise`
 * (its defaults answer undefined off a terminal — 80 columns, colours off — whatever their types say).
 */
function onProcessStreams<T>(processAnswer: () => T | undefined, otherwise: T): T {
  return (currentIo() === processIo ? processAnswer() : undefined) ?? otherwise
}

/**
 * Writes to the current run's io. Help is wrapped and coloured as commander does for the
 * process's streams when the run uses them; a captured io is not a terminal (80 columns, no colour).
 */
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
      // Help and --version end with commander's 0; everything else it stops for is bad usage: 2.
      throw new CommandLineExit(e.exitCode === 0 ? 0 : 2, e.code)
    })
    .option(
      '--cluster <name>',
      "the failover cluster the cluster, vm, node, csv and replica commands address, in a lab of several (topology `clusters`), before the command: `hvlab --cluster dr vm list`; default: the lab's first",
      clusterName,
    )
    .hook('preAction', () => chooseCluster(program.opts<{ cluster?: string }>().cluster ?? null))
  chooseCluster(null) // one choice per run: a program built again starts from the first cluster
  registerLabCommands(program)
  registerVmCommands(program)
  registerNodeCommands(program)
  registerClusterCommands(program)
  registerArrayCommands(program)
  registerRcopyCommands(program)
  registerCsvCommands(program)
  registerReplicaCommands(program)
  registerSoakCommands(program)
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

/** `--cluster NAME`: a name as the topology allows them (which clusters the lab has, the command's first request tells). */
function clusterName(v: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(v))
    throw new InvalidArgumentError('a cluster name: 1–63 of a-z 0-9 . _ -, as the topology names it')
  return v
}
