/**
 * What a host knows of the storage of a VM it runs, for `hvlab vm list` (STORAGE column):
 *   none — no disk is attached (local storage, or CLX has not made one writable yet);
 *   lost — the array of its writable copy cannot be reached from this host, the array
 *          fenced the host (a newer epoch wrote), or its last write failed (an array down,
 *          or a copy that is not writable here);
 *   ok   — otherwise.
 * On a Cluster Shared Volume an unreachable array is not a loss by itself (I/O is
 * redirected through the CSV's coordinator node); a fence or a failed write is. Pure.
 */
import type { VmDiskTarget } from '../clx/disk-target.js'

export type StorageHealthState = 'ok' | 'lost' | 'none'

export interface StorageHealth {
  readonly state: StorageHealthState
  /** Why it is lost, for people ('' when it is not). */
  readonly reason: string
}

export interface DiskWriterView {
  readonly state: 'idle' | 'writing' | 'paused' | 'fenced' | 'detached'
  /** The newest write that finished failed (none yet: false). */
  readonly last_write_failed: boolean
  readonly last_error: string | null
}

export function storageHealth(
  target: VmDiskTarget | undefined,
  writer: DiskWriterView | null | undefined,
  arrayReachable: (array: string) => boolean,
): StorageHealth {
  if (target === undefined) return { state: 'none', reason: '' }
  if (writer?.state === 'fenced') return lost(`fenced by ${target.array}: a newer cluster epoch wrote ${target.volume}`)
  if (target.csv === null && !arrayReachable(target.array))
    return lost(`${target.array}, which holds the writable copy of ${target.volume}, cannot be reached`)
  if (writer?.last_write_failed === true)
    return lost(`the last write to ${target.array}/${target.volume} failed: ${writer.last_error ?? 'no reason given'}`)
  return { state: 'ok', reason: '' }
}

function lost(reason: string): StorageHealth {
  return { state: 'lost', reason }
}
