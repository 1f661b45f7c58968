/**
 * Where one Remote Copy group's state lives on disk: its record (`<group>.json`, replaced
 * atomically by each `persist`) and the block appends after it (`<group>.blocks`, one
 * JSON line per `persist-blocks`, fdatasynced before the append resolves). A `persist`
 * makes the record durable first, then empties the append file; a crash in between
 * leaves old appends next to a newer record, which only widens the dirty/rollback sets
 * (a superset is safe: it costs a resend, never a lost block). A torn last line is an
 * append that never completed, so nothing after it ran; it is ignored.
 *
 * Damage. Every append is written whole (looping on short writes, write-all.ts) and the
 * append file's directory entry is made durable when the file is created. A line that is
 * not a whole append anywhere else (a torn write from an older build, a disk fault) is
 * skipped and counted in `damaged_lines`: the array still opens, and the caller must not
 * trust the sets it rebuilt (remote-copy-service.ts resyncs by full comparison).
 */
import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { readDurableJson, removeIfPresent, syncDirectory, writeDurableJson } from '../shared/durable-json.js'
import { SerialQueue } from '../shared/serial-queue.js'
import type { RcEffect, RcGroupRecord } from './remote-copy-group.js'
import { writeAll } from './write-all.js'
import { parseJsonLine } from '../shared/json-syntax.js'

export type BlockAppend = Extract<RcEffect, { kind: 'persist-blocks' }>

/** What `load` found: the record, the appends it could read, and how many lines it could not. */
export interface GroupJournalContents {
  record: RcGroupRecord
  appended: BlockAppend[]
  damaged_lines: number
}

/** Appends are small (a batch of block numbers); a line over this is damage, not data. */
const APPEND_LINE_CHARS_MAX = 4 * 1024 * 1024

/** One line of the append file as a block append, or undefined when it is not a whole one. */
export function parseAppendLine(line: string): BlockAppend | undefined {
  const a = parseJsonLine(line, APPEND_LINE_CHARS_MAX)
  if (typeof a !== 'object' || a === null) return undefined
  const { kind, set, volume, blocks } = a as Record<string, unknown>
  if (kind !== 'persist-blocks' || (set !== 'dirty' && set !== 'rollback') || typeof volume !== 'string') return undefined
  if (!Array.isArray(blocks) || !blocks.every((b) => Number.isSafeInteger(b) && (b as number) >= 0)) return undefined
  return { kind, set, volume, blocks: blocks as number[] }
}

export class GroupJournal {
  private appends: FileHandle | undefined
  /** The append file's directory entry is durable (synced once after this process created or first opened it). */
  private append_file_durable = false
  private readonly queue = new SerialQueue()

  private constructor(
    private readonly dir: string,
    readonly group: string,
  ) {}

  static async open(dir: string, group: string): Promise<GroupJournal> {
    await mkdir(dir, { recursive: true })
    return new GroupJournal(dir, group)
  }

  /** The groups that have a record in `dir`. */
  static async groupsIn(dir: string): Promise<string[]> {
    await mkdir(dir, { recursive: true })
    return (await readdir(dir))
      .filter((f) => f.endsWith('.json') && !f.startsWith('.'))
      .map((f) => f.slice(0, -'.json'.length))
      .sort()
  }

  private get recordPath(): string {
    return join(this.dir, `${this.group}.json`)
  }

  private get appendPath(): string {
    return join(this.dir, `${this.group}.blocks`)
  }

  /** The last record and the appends after it; undefined if the group was never persisted. */
  async load(): Promise<GroupJournalContents | undefined> {
    const record = (await readDurableJson(this.recordPath)) as RcGroupRecord | undefined
    if (record === undefined) return undefined
    let text = ''
    try {
      text = await readFile(this.appendPath, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    const appended: BlockAppend[] = []
    let damaged_lines = 0
    const complete = text.split('\n').slice(0, -1) // the last piece is '' or a torn last line
    for (const line of complete) {
      const a = parseAppendLine(line)
      if (a) appended.push(a)
      else damaged_lines++
    }
    return { record, appended, damaged_lines }
  }

  persist(record: RcGroupRecord): Promise<void> {
    return this.queue.run(async () => {
      await writeDurableJson(this.recordPath, record)
      await this.appends?.close()
      this.appends = undefined
      const fh = await open(this.appendPath, 'w', 0o600) // truncates
      await fh.datasync()
      this.appends = fh
      await this.makeAppendFileDurable()
    })
  }

  append(a: BlockAppend): Promise<void> {
    return this.queue.run(async () => {
      if (!this.appends) {
        this.appends = await open(this.appendPath, 'a', 0o600)
        await this.makeAppendFileDurable()
      }
      const line = JSON.stringify({ kind: a.kind, set: a.set, volume: a.volume, blocks: a.blocks }) + '\n'
      await writeAll(this.appends, Buffer.from(line, 'utf8'), `appending to ${this.appendPath}`)
      await this.appends.datasync()
    })
  }

  /** A new file is durable only once its directory entry is: fsync the directory once. */
  private async makeAppendFileDurable(): Promise<void> {
    if (this.append_file_durable) return
    await syncDirectory(this.dir)
    this.append_file_durable = true
  }

  async remove(): Promise<void> {
    await this.queue.run(async () => {
      await this.appends?.close()
      this.appends = undefined
      await removeIfPresent(this.recordPath)
      await removeIfPresent(this.appendPath)
      await syncDirectory(this.dir)
      this.append_file_durable = false
    })
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      await this.appends?.close()
      this.appends = undefined
    })
  }
}
