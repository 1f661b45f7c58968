/**
 * A soak's history (`history.jsonl` in its data dir): one JSON record per line, everything
 * the checker needs and nothing it must trust blindly — what was run (meta), every client
 * ping and its reply, every fault and its heal, every operator action, samples of each
 * process's memory and open files, the lab's timeline events, every guest disk write with
 * its outcome (the hosts' journals), what each written block holds at the end, the VMs it
 * replicated with Hyper-V Replica and what each block of their replicas holds at the end,
 * and when the run ended. `hvlab soak report DIR` re-reads it, so every line is validated as input
 * from outside. Times are ms on the machine's wall clock (Date.now()), never a process's
 * skewable clock.
 */
import { appendFileSync, createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { z } from 'zod'
import { diskJournalCompletedLine, diskJournalIssuedLine } from '../../shared/disk-journal-format.js'
import { HvlabError } from '../../shared/errors.js'
import { field } from '../../shared/protocol/define.js'

/** Longest history line read; a longer one is refused. */
export const HISTORY_LINE_CHARS_MAX = 64 * 1024
export const HISTORY_FILE = 'history.jsonl'

const name = z.string().min(1).max(255)
const word = z.string().min(1).max(64)
const time_ms = z.number().finite().min(0)
const uint = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

const meta = z.strictObject({
  t: z.literal('meta'),
  format: z.literal(1),
  seed: uint,
  minutes: z.number().positive().max(100_000),
  topology: z.string().min(1).max(4096),
  faults: z.array(word).max(32),
  vms: z.array(name).max(1024),
  reproduce: z.string().max(4096),
  started_ms: time_ms,
  recovery_bound_ms: uint,
  block_size_bytes: uint,
  /** Guest memory of each VM, MiB (the hosts' memory bound grows with it). */
  vm_memory_mib: uint,
  /** The clients' ping interval, ms (the finest gap they can see). */
  ping_interval_ms: uint,
})

const ping = z.strictObject({
  t: z.literal('ping'),
  vm: name,
  seq: uint,
  sent_ms: time_ms,
  /** When the reply came; null when none did (unreachable or lost). */
  reply_ms: time_ms.nullable(),
  host: name.nullable(),
  outcome: z.enum(['reply', 'unreachable', 'lost']),
})

const fault = z.strictObject({
  t: z.literal('fault'),
  id: uint,
  kind: word,
  target: z.string().min(1).max(1024),
  phase: z.enum(['start', 'heal']),
  at_ms: time_ms,
  /** Processes the fault killed or stopped (so their exits are no crash). */
  processes: z.array(name).max(256),
})

/** Characters of a failed action's message kept in the history. */
export const OP_SAID_CHARS_MAX = 300

const op = z.strictObject({
  t: z.literal('op'),
  kind: word,
  target: z.string().min(1).max(1024),
  start_ms: time_ms,
  end_ms: time_ms,
  ok: z.boolean(),
  error_code: word.nullable(),
  /** What the CLI printed when it failed: its error, else its result (for the reader; nothing decides on it). */
  said: z.string().max(OP_SAID_CHARS_MAX).optional(),
})

const sample = z.strictObject({
  t: z.literal('sample'),
  at_ms: time_ms,
  process: name,
  /** host, array, witness, standalone or controller. */
  role: word,
  rss_bytes: uint,
  fds: uint,
})

const event = z.strictObject({
  t: z.literal('event'),
  seq: uint,
  at_ms: time_ms,
  kind: word,
  source: name,
  details: z.record(z.string().max(64), z.unknown()),
})

/** A host's disk write journal line (agent/vm/disk-write-journal.ts), as the history keeps it. */
const diskIssued = diskJournalIssuedLine.extend({ t: z.literal('disk-issued') })
const diskDone = diskJournalCompletedLine.extend({ t: z.literal('disk-done'), outcome: diskJournalCompletedLine.shape.t })

const diskFinal = z.strictObject({
  t: z.literal('disk-final'),
  vm: name,
  /** A data disk (`vm create --disks N`): 1…; absent: disk 0. */
  disk: uint.optional(),
  array: name,
  volume: name,
  block: uint,
  sha256: field.sha256Hex(),
})

/** A VM the soak replicates with Hyper-V Replica (a topology with a standalone host: soak-replica.ts). */
const replica = z.strictObject({
  t: z.literal('replica'),
  vm: name,
  /** The replica server. */
  server: name,
  /** The replication cycle as the lab runs it (the topology's timeScale applied), ms. */
  frequency_ms: uint,
  /** When its initial replication was done. */
  enabled_ms: time_ms,
})

/** What a block of the replica holds once the writers stopped and replication caught up. */
const replicaFinal = z.strictObject({
  t: z.literal('replica-final'),
  vm: name,
  server: name,
  block: uint,
  sha256: field.sha256Hex(),
})

/** How the wait for replication to catch up at the end went: when it had (nothing pending, nothing in flight), or null if it never did. */
const replicaEnd = z.strictObject({
  t: z.literal('replica-end'),
  vm: name,
  server: name,
  caught_up_ms: time_ms.nullable(),
})

const end = z.strictObject({
  t: z.literal('end'),
  faults_stopped_ms: time_ms,
  ended_ms: time_ms,
})

export const historyRecord = z.discriminatedUnion('t', [
  meta,
  ping,
  fault,
  op,
  sample,
  event,
  diskIssued,
  diskDone,
  diskFinal,
  replica,
  replicaFinal,
  replicaEnd,
  end,
])
export type HistoryRecord = z.infer<typeof historyRecord>
export type RecordOf<T extends HistoryRecord['t']> = Extract<HistoryRecord, { t: T }>

/** The records of one history, by kind, in file order. */
export interface History {
  meta: RecordOf<'meta'>
  pings: RecordOf<'ping'>[]
  faults: RecordOf<'fault'>[]
  ops: RecordOf<'op'>[]
  samples: RecordOf<'sample'>[]
  events: RecordOf<'event'>[]
  disk_issued: RecordOf<'disk-issued'>[]
  disk_done: RecordOf<'disk-done'>[]
  disk_final: RecordOf<'disk-final'>[]
  replicas: RecordOf<'replica'>[]
  replica_final: RecordOf<'replica-final'>[]
  replica_end: RecordOf<'replica-end'>[]
  end: RecordOf<'end'> | null
}

/** Appends records to a history file, one line each, synchronously (a run killed mid-way keeps what it wrote). */
export class HistoryWriter {
  constructor(readonly file: string) {}

  write(record: HistoryRecord): void {
    appendFileSync(this.file, JSON.stringify(record) + '\n')
  }

  writeAll(records: readonly HistoryRecord[]): void {
    if (records.length > 0) appendFileSync(this.file, records.map((r) => JSON.stringify(r)).join('\n') + '\n')
  }
}

/** One line parsed and validated; a bad one throws naming its line number. */
export function parseHistoryLine(text: string, line: number, file: string): HistoryRecord {
  const bad = (why: string): HvlabError =>
    new HvlabError('HVLAB_E_USAGE', `${file} line ${line}: ${why}; is this the history.jsonl of a soak run (npm run soak)?`)
  if (text.length > HISTORY_LINE_CHARS_MAX) throw bad(`longer than ${HISTORY_LINE_CHARS_MAX} characters`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw bad('not JSON')
  }
  const r = historyRecord.safeParse(json)
  if (!r.success)
    throw bad(
      r.error.issues
        .map((i) => `${i.path.join('.') || '(record)'}: ${i.message}`)
        .join('; ')
        .slice(0, 500),
    )
  return r.data
}

/** Groups parsed records by kind; the history must start with its meta record. */
export function historyOf(records: Iterable<HistoryRecord>, file: string): History {
  let h: History | null = null
  for (const r of records) {
    if (h === null) {
      if (r.t !== 'meta') throw new HvlabError('HVLAB_E_USAGE', `${file} does not start with a meta record; is it a soak's history?`)
      h = emptyHistory(r)
      continue
    }
    addRecord(h, r)
  }
  if (h === null) throw new HvlabError('HVLAB_E_USAGE', `${file} is empty; is it a soak's history?`)
  return h
}

function emptyHistory(meta: RecordOf<'meta'>): History {
  const none = { pings: [], faults: [], ops: [], samples: [], events: [], disk_issued: [], disk_done: [], disk_final: [] }
  return { meta, ...none, replicas: [], replica_final: [], replica_end: [], end: null }
}

function addRecord(h: History, r: HistoryRecord): void {
  if (r.t === 'ping') h.pings.push(r)
  else if (r.t === 'fault') h.faults.push(r)
  else if (r.t === 'op') h.ops.push(r)
  else if (r.t === 'sample') h.samples.push(r)
  else if (r.t === 'event') h.events.push(r)
  else if (r.t === 'disk-issued') h.disk_issued.push(r)
  else if (r.t === 'disk-done') h.disk_done.push(r)
  else if (r.t === 'disk-final') h.disk_final.push(r)
  else if (r.t === 'replica') h.replicas.push(r)
  else if (r.t === 'replica-final') h.replica_final.push(r)
  else if (r.t === 'replica-end') h.replica_end.push(r)
  else if (r.t === 'end') h.end = r
  // a second meta record is ignored: the first says what was run
}

/** Reads and validates a whole history file. */
export async function readHistory(file: string): Promise<History> {
  const records: HistoryRecord[] = []
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
  let n = 0
  try {
    for await (const text of lines) {
      n++
      if (text.trim().length > 0) records.push(parseHistoryLine(text, n, file))
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new HvlabError('HVLAB_E_NOT_FOUND', `no history at ${file}; give the data dir of a soak run (its --dir)`)
    throw e
  }
  return historyOf(records, file)
}
