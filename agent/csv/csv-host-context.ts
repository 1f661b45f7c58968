/**
 * What every part of a host's CSV work shares: the process, this host's copy of the CSV
 * records (csv-database.ts), the I/O byte counter, the checks a request starts with (the
 * host holds quorum, the CSV exists), the coordinator change, the sites of hosts and arrays,
 * and the typed request to another host (checked reply type, CSV_IO_TIMEOUT_MS).
 */
import { Counter } from 'prom-client'
import { HvlabError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { Logger } from '../../shared/log.js'
import type { Message, MessageOf } from '../../shared/protocol/messages.js'
import { askPeer } from '../../shared/transport/peer-ask.js'
import type { ClusterService } from '../cluster/cluster-service.js'
import type { Membership } from '../cluster/membership.js'
import { CsvDatabase } from './csv-database.js'
import { csvKey, encodeCsv, type CsvEntry } from './csv-record.js'

export const CSV_IO_TIMEOUT_MS = 3000

export class CsvHostContext {
  readonly log: Logger
  readonly membership: Membership
  readonly db: CsvDatabase
  /** Bytes written or read on CSVs, by path: direct, redirected, served (for others). */
  readonly bytes: Counter<'path'>

  constructor(
    readonly p: LabProcess,
    readonly cluster: ClusterService,
  ) {
    this.log = p.log.child({ component: 'csv' })
    this.membership = cluster.membership
    this.db = new CsvDatabase(cluster, p.clock)
    this.bytes = new Counter({
      name: 'hvlab_csv_io_bytes_total',
      help: 'Bytes this host wrote or read on Cluster Shared Volumes, by path (direct, redirected, served for others)',
      labelNames: ['path'],
      registers: [p.metrics.registry],
    })
  }

  siteOf(node: string): string | undefined {
    return this.p.topology.hosts.find((h) => h.name === node)?.site
  }

  arraySite(array: string): string | null {
    return this.p.topology.arrays.find((a) => a.name === array)?.site ?? null
  }

  requireQuorum(what: string): void {
    if (!this.membership.holdsLease(this.p.clock.now()))
      throw new HvlabError(
        'HVLAB_E_STATE',
        `cannot ${what}: ${this.p.name} holds no cluster quorum now; retry when \`hvlab cluster status\` shows quorum HELD`,
      )
  }

  /** CSV `name` as this host's copy has it; throws HVLAB_E_NOT_FOUND if there is none. */
  mustExist(name: string): CsvEntry {
    const e = this.db.entry(name)
    if (e === undefined)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `there is no CSV ${name}; \`hvlab csv list\` shows the CSVs, \`hvlab csv create\` makes one`,
      )
    return e
  }

  /** Commits `owner` as the coordinator node of CSV `e`. */
  setOwner(e: CsvEntry, owner: string): Promise<void> {
    return this.db.commit(
      csvKey(e.name),
      encodeCsv({ array: e.array, volume: e.volume, size_bytes: e.size_bytes, block_size_bytes: e.block_size_bytes, owner }),
    )
  }

  /** Asks host `to`; the reply must be of type `expect`. Throws HVLAB_E_CLOSED without a connection. */
  async ask<T extends Message['t']>(
    to: string,
    message: Message,
    expect: T,
    attachment?: Uint8Array,
  ): Promise<{ message: MessageOf<T>; attachment: Buffer }> {
    return askPeer(this.p.mesh, this.p.name, to, message, expect, {
      timeout_ms: CSV_IO_TIMEOUT_MS,
      ...(attachment ? { attachment: Buffer.from(attachment.buffer, attachment.byteOffset, attachment.byteLength) } : {}),
    })
  }
}
