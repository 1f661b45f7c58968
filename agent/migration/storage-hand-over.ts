/**
 * The storage step inside the blackout, as a pluggable async hook the source's shell
 * calls: CSV needs nothing (every node already sees the volume); a disk owned by the
 * node moves its ownership; across sites CLX switches the remote-copy group over. The
 * hook may refuse (reject with a reason a person reads): the migration then ends with
 * the VM running on the source. `handBack` undoes a hand-over when the migration fails
 * after it (it must not refuse; if it throws, the error is logged and the array's
 * fencing is what protects the volume).
 */
import { HvlabError } from '../../shared/errors.js'
import type { StorageMode } from '../../shared/protocol/migration-messages.js'

export interface StorageHandOverRequest {
  readonly vm: string
  readonly mode: StorageMode
  readonly source: string
  readonly destination: string
}

export interface StorageHandOver {
  handOver(request: StorageHandOverRequest): Promise<void>
  handBack(request: StorageHandOverRequest): Promise<void>
}

/**
 * The default: CSV needs nothing; for an owned disk or a CLX group, which need the
 * cluster or the arrays, it refuses until a real hook is plugged in.
 */
export const csvOnlyStorage: StorageHandOver = {
  handOver: async (r) => {
    if (r.mode === 'csv') return
    throw new HvlabError(
      'HVLAB_E_REFUSED',
      `vm ${r.vm} keeps its disk as ${r.mode === 'owned' ? 'a node-owned disk' : 'a CLX remote-copy group'}, and this host has no storage hook for that; migrate it with the cluster's storage wired in, or move its disk to a CSV`,
    )
  },
  handBack: async () => undefined,
}
