/**
 * A host's journal of its VMs' disk writes (`HVLAB_DISK_WRITE_JOURNAL=1`,
 * shared/lab-env.ts): one JSON line per write when it is issued (before it is sent) and
 * one when it has completed, appended to `<lab>/data/<host>/disk-writes.jsonl`. The soak's
 * checker (scripts/soak) reads every host's journal with `parseDiskJournalLine`
 * (shared/disk-journal-format.ts, the line format) and holds
 * the outcomes against what the arrays hold: no acknowledged write lost, no stale owner's
 * write accepted.
 *
 *   {"t":"issued","vm":"web1","host":"host-a1","array":"array-a","volume":"web1-disk0","epoch":7,"seq":12,"block":12,"value":9,"at_ms":…}
 *   {"t":"acked"|"refused"|"failed","vm":"web1","host":"host-a1","epoch":7,"seq":12,"block":12,"at_ms":…,"code":"HVLAB_E_…"|null}
 *
 * A data disk's lines carry `"disk":K` (its own write sequence; shared/disk-journal-format.ts).
 *
 * refused: the array refused it and wrote nothing (vm-disk.ts DISK_WRITE_REFUSAL_CODES);
 * failed: anything else (a timeout, a lost link, another refusal), in doubt — it may or may
 * not have landed. `code` is the error's stable code, null for an ack or a foreign error.
 *
 * Each line is one synchronous write(2) to a file opened for append: it is in the OS's
 * hands before the block write is sent, so a kill -9 after that keeps it (no fsync: the
 * lab's machine stays up). `at_ms` is the machine's wall clock (Date.now()), not the
 * process's Clock, which the lab may skew: the checker compares times across processes.
 * A journal that cannot be written (disk full) reports once through `onError` and stops;
 * it never throws into the disk writer.
 */
import { closeSync, openSync, writeSync } from 'node:fs'
import type { HvlabCode } from '../../shared/errors.js'
import { type DiskJournalCompleted, type DiskJournalIssued, type DiskJournalLine } from '../../shared/disk-journal-format.js'
import type { DiskWriteRecord } from './disk-write-record.js'
import type { DiskWriteOutcome, DiskWritePlace, DiskWriteSink } from './vm-disk.js'

export interface DiskWriteJournalOptions {
  /** Told once, when the journal cannot be opened or written; it stops journaling then. */
  onError: (e: unknown) => void
  /** Wall-clock milliseconds (default Date.now). */
  now_ms?: () => number
}

export class DiskWriteJournal implements DiskWriteSink {
  private fd: number | null = null
  private readonly onError: (e: unknown) => void
  private readonly now_ms: () => number

  /** Opens `path` for append; never throws: a file that cannot be opened is reported like a write error. */
  constructor(
    readonly path: string,
    o: DiskWriteJournalOptions,
  ) {
    this.onError = o.onError
    this.now_ms = o.now_ms ?? Date.now
    try {
      this.fd = openSync(path, 'a')
    } catch (e) {
      this.onError(e)
    }
  }

  /** Is it still writing (open, and no write has failed)? */
  get writing(): boolean {
    return this.fd !== null
  }

  issued(r: DiskWriteRecord, to: DiskWritePlace): void {
    const line: DiskJournalIssued = {
      t: 'issued',
      vm: r.vm,
      host: to.host,
      array: to.array,
      volume: to.volume,
      epoch: r.epoch,
      seq: r.seq,
      block: r.block,
      value: r.value,
      at_ms: this.now_ms(),
      ...(to.disk ? { disk: to.disk } : {}),
    }
    this.append(line)
  }

  completed(r: DiskWriteRecord, outcome: DiskWriteOutcome, code: HvlabCode | null, to: DiskWritePlace): void {
    const line: DiskJournalCompleted = {
      t: outcome,
      vm: r.vm,
      host: to.host,
      epoch: r.epoch,
      seq: r.seq,
      block: r.block,
      at_ms: this.now_ms(),
      code,
      ...(to.disk ? { disk: to.disk } : {}),
    }
    this.append(line)
  }

  /** Stops journaling and closes the file; later writes are not recorded. */
  close(): void {
    const fd = this.fd
    this.fd = null
    if (fd !== null) closeSync(fd)
  }

  private append(line: DiskJournalLine): void {
    const fd = this.fd
    if (fd === null) return
    const bytes = Buffer.from(JSON.stringify(line) + '\n', 'utf8')
    try {
      for (let at = 0; at < bytes.length;) {
        const n = writeSync(fd, bytes, at, bytes.length - at)
        if (n <= 0) throw new Error(`the journal file ${this.path} accepted no bytes`)
        at += n
      }
    } catch (e) {
      this.fail(e)
    }
  }

  /** The first write error: reported once, the file closed, journaling over. */
  private fail(e: unknown): void {
    const fd = this.fd
    this.fd = null
    try {
      if (fd !== null) closeSync(fd)
    } catch {
      // already failing: the report below is what matters
    }
    this.onError(e)
  }
}
