/**
 * Where one Remote Copy group's state lives on disk: its record (`<group>.json`, replaced
 * atomically by each `persist`) and the block appends after it (`<group>.blocks`, one
 * JSON line per `persist-blocks`, fdatasynced before the append resolves). A `persist`
 * makes the record durable first, then empties the append file; a crash in between
 * leaves old appends next to a newer record, which only widens the dirty/rollback sets
 * (a superset is safe: it costs a resend, never a lost block). A torn last line is an
 * append that never completed, so nothing after it ran; it is ignored.
 */
import { mkdir, open, readdir, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { readDurableJson, removeIfPresent, SerialQueue, syncDirectory, writeDurableJson } from '../shared/durable-json.js'
import { HvlabError } from '../shared/errors.js'
import type { RcEffect, RcGroupRecord } from './remote-copy-group.js'

export type BlockAppend = Extract<RcEffect, { kind: 'persist-blocks' }>

/** Appends are small (a batch of block numbers); a line over this is damage, not data. */
const APPEND_LINE_CHARS_MAX = 4 * 1024 * 1024

export class GroupJournal {
  private appends: FileHandle | undefined
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
    return (await readdir(dir)).filter((f) => f.endsWith('.json') && !f.startsWith('.')).map((f) => f.slice(0, -'.json'.length)).sort()
  }

  private get recordPath(): string {
    return join(this.dir, `${this.group}.json`)
  }

  private get appendPath(): string {
    return join(this.dir, `${this.group}.blocks`)
  }

  /** The last record and the appends after it; undefined if the group was never persisted. */
  async load(): Promise<{ record: RcGroupRecord; appended: BlockAppend[] } | undefined> {
    const record = (await readDurableJson(this.recordPath)) as RcGroupRecord | undefined
    if (record === undefined) return undefined
    let text = ''
    try {
      text = await readFile(this.appendPath, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
    const appended: BlockAppend[] = []
    const lines = text.split('\n')
    const complete = text.endsWith('\n') ? lines.slice(0, -1) : lines.slice(0, -1) // the last piece is '' or a torn line
    for (const line of complete) {
      if (line.length > APPEND_LINE_CHARS_MAX) throw new HvlabError('HVLAB_E_INTERNAL', `${this.appendPath} has an oversize line; it is damaged`)
      const a = JSON.parse(line) as BlockAppend
      if (a.kind !== 'persist-blocks' || !Array.isArray(a.blocks)) throw new HvlabError('HVLAB_E_INTERNAL', `${this.appendPath} has a line that is not a block append; it is damaged`)
      appended.push(a)
    }
    return { record, appended }
  }

  persist(record: RcGroupRecord): Promise<void> {
    return this.queue.run(async () => {
      await writeDurableJson(this.recordPath, record)
      await this.appends?.close()
      this.appends = undefined
      const fh = await open(this.appendPath, 'w', 0o600) // truncates
      await fh.datasync()
      this.appends = fh
    })
  }

  append(a: BlockAppend): Promise<void> {
    return this.queue.run(async () => {
      if (!this.appends) this.appends = await open(this.appendPath, 'a', 0o600)
      await this.appends.write(JSON.stringify({ kind: a.kind, set: a.set, volume: a.volume, blocks: a.blocks }) + '\n')
      await this.appends.datasync()
    })
  }

  async remove(): Promise<void> {
    await this.queue.run(async () => {
      await this.appends?.close()
      this.appends = undefined
      await removeIfPresent(this.recordPath)
      await removeIfPresent(this.appendPath)
      await syncDirectory(this.dir)
    })
  }

  async close(): Promise<void> {
    await this.queue.run(async () => {
      await this.appends?.close()
      this.appends = undefined
    })
  }
}
