/**
 * Writing every byte of a journal record: `FileHandle.write` may write fewer bytes than
 * asked (a short write), so it loops until all are written, each time from where the last
 * one stopped; a write that makes no progress fails loudly instead of leaving a record
 * cut short in the middle of a journal.
 */
import { HvlabError } from '../shared/errors.js'

/** The one method of a FileHandle used here (a test can hand in one that writes short). */
export interface WritableFile {
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>
}

/** Writes all of `data` at the file's position (for a file opened 'a', its end). */
export async function writeAll(file: WritableFile, data: Uint8Array, what: string): Promise<void> {
  let written_bytes = 0
  while (written_bytes < data.length) {
    const { bytesWritten } = await file.write(data, written_bytes, data.length - written_bytes)
    if (!Number.isSafeInteger(bytesWritten) || bytesWritten <= 0) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `${what}: the disk took ${String(bytesWritten)} of the last ${data.length - written_bytes} bytes (${written_bytes} of ${data.length} written); the record is incomplete — check the disk (full? read-only?)`,
      )
    }
    written_bytes += bytesWritten
  }
}
