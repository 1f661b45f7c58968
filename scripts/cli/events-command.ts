/**
 * `hvlab events`: the lab-wide timeline. With the lab running it asks the controller (its
 * events in memory, then with --follow each new one); after `hvlab down` it reads the
 * events files the controller left in the data dir. The filters and --tail apply the same
 * way to both (event-selection.ts).
 */
import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { labLayout, type LabLayout } from '../../shared/lab-layout.js'
import type { TimelineEvent } from '../../shared/timeline/events.js'
import { readRunningControl } from '../controller/control-file.js'
import { currentIo } from './cli-io.js'
import { ControlClient } from './control-client.js'
import { checkSource, parseCount, parseKinds, parseName, parseSince, resolveKinds } from './event-options.js'
import { type EventSelection, EventSieve } from './event-selection.js'
import { formatEvent } from './format.js'
import { dirOption, out } from './options.js'

interface EventsOptions {
  dir: string
  follow?: boolean
  json?: boolean
  after?: number
  kind?: string[]
  vm?: string
  source?: string
  since?: number
  tail?: number
}

/** What `hvlab events --help` says after the options: the sources and the timeline's limits. */
const EVENTS_HELP_AFTER = [
  '',
  'With the lab running, this shows the events the controller keeps in memory: the newest',
  "10,000 within the topology's limits.timeline_memory_bytes_max (16 MiB by default). Every",
  'event is also written to the data dir as events.<n>.jsonl, rotated at events_file_bytes_max',
  '(16 MiB); the newest events_files_kept (4) rotated files are kept. After `hvlab down` the',
  'events are read from those files (--follow needs a running lab).',
  'At most event_followers_max (16) clients --follow at once; one that falls more than',
  'event_follower_queue_bytes_max (1 MiB) behind is cut off: it prints why and exits 1,',
  'and --after SEQ resumes from the last event it printed.',
  '',
  'Examples: hvlab events --kind cluster. --since 5m · hvlab events --vm web1 --tail 20 ·',
  '          hvlab events --source host-a1 --kind process.crashed,peer.lost --follow',
].join('\n')

export function registerEvents(program: Command): void {
  program
    .command('events')
    .description('the lab-wide timeline: process started/exited/crashed, peer connected/lost, partitions, … (also after `hvlab down`)')
    .addHelpText('after', EVENTS_HELP_AFTER)
    .addOption(dirOption())
    .option('--follow', 'keep printing new events until Ctrl-C (exit 1 with the reason if the lab cuts this follower off)')
    .option('--json', 'one JSON object per line: {"seq","at_ms","kind","source","details"}')
    .option('--after <seq>', 'only events after this sequence number', parseCount('--after', 0))
    .option('--kind <kinds>', 'only these kinds or families (cluster.node-down, cluster.); repeatable, or a comma list', parseKinds)
    .option('--vm <name>', 'only events whose details name this VM', parseName('--vm'))
    .option('--source <process>', 'only events this process emitted (lab: the controller)', parseName('--source'))
    .option('--since <time>', 'only events since a duration ago (30s, 5m, 2h, 1d) or an ISO time', (v) => parseSince(v, Date.now()))
    .option('--tail <n>', 'only the last N matching events (then, with --follow, each new one)', parseCount('--tail', 1, 1_000_000))
    .action(printEvents)
}

async function selectionOf(o: EventsOptions): Promise<EventSelection> {
  // The declared kinds come with the timeline's schemas (and zod), loaded only by this command.
  const kinds = o.kind === undefined ? [] : resolveKinds(o.kind, (await import('../../shared/timeline/events.js')).EVENT_KINDS)
  return { after: o.after ?? 0, kinds, vm: o.vm, source: o.source, since_ms: o.since }
}

async function printEvents(o: EventsOptions): Promise<void> {
  const layout = labLayout(o.dir)
  const selection = await selectionOf(o)
  if (o.source !== undefined) checkSource(o.source, await labProcesses(layout))
  const sieve = new EventSieve(selection, o.tail, (e) => out(o.json ? JSON.stringify(e) : formatEvent(e)))
  if (readRunningControl(layout)) return printFromLab(ControlClient.forDir(o.dir), sieve, o)
  if (o.follow)
    throw new HvlabError(
      'HVLAB_E_LAB',
      `no lab is running in ${layout.root}: --follow needs one (\`hvlab up --detach --dir ${o.dir}\`); without --follow the events of the stopped lab are read from its files`,
    )
  const { readEventsFiles } = await import('./events-file.js')
  const read = await readEventsFiles(layout, (e) => sieve.take(e))
  sieve.endOfBacklog()
  const skipped = read.lines_skipped > 0 ? `; ${read.lines_skipped} line(s) that were not whole events passed over` : ''
  currentIo().stderr(`hvlab: no lab is running in ${layout.root}; read its timeline from ${read.files.length} events file(s)${skipped}\n`)
}

/** The names of the lab's processes from the topology copy in its data dir; undefined when it has none (or not a valid one). */
async function labProcesses(layout: LabLayout): Promise<string[] | undefined> {
  if (!existsSync(layout.topology)) return undefined
  const { loadTopology, processesOf } = await import('../../shared/topology.js')
  try {
    return processesOf(loadTopology(layout.topology)).map((p) => p.name)
  } catch (e) {
    if (e instanceof HvlabError && e.code === 'HVLAB_E_TOPOLOGY') return undefined
    throw e
  }
}

/**
 * The controller's events in memory, and with --follow each new one: in one stream, or with
 * --tail the backlog first (its last N) and then a follower from the newest event seen.
 */
async function printFromLab(client: ControlClient, sieve: EventSieve, o: { follow?: boolean; tail?: number }): Promise<void> {
  const take = (e: unknown): void => sieve.take(e as TimelineEvent)
  const abort = new AbortController()
  // Ctrl-C ends the command quietly (exit 0)
  const stopListening = currentIo().onInterrupt?.(() => abort.abort())
  try {
    if (!o.follow || o.tail !== undefined) {
      await client.stream(`/v1/events?after=${sieve.lastSeenSeq}`, take, abort.signal)
      sieve.endOfBacklog()
      if (!o.follow || abort.signal.aborted) return
    }
    await client.stream(`/v1/events?after=${sieve.lastSeenSeq}&follow=1`, take, abort.signal)
  } finally {
    stopListening?.()
  }
}
