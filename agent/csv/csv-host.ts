/**
 * Puts Cluster Shared Volumes into a host process: one CsvVolume per CSV (the I/O path,
 * csv-volumes.ts), the coordinator node's metadata work (region allocate/release, serialized
 * per CSV; csv-region-metadata.ts), the I/O it does for nodes that lost their path
 * (csv-peer-requests.ts), the takeover of CSVs whose coordinator node left the cluster view
 * (decided by the cluster's coordinator with coordinator-choice.ts; coordinator-takeover.ts),
 * the hand-off of CSVs whose coordinator node lost its own path to the array (it checks that
 * path every second and gives the CSV to the first member that has one;
 * coordinator-hand-off.ts), the operator requests (`hvlab csv …`; csv-operator-requests.ts;
 * `csv remove`: csv-removal.ts)
 * and `csv` in GET /status. This file wires the parts and runs the periodic work on the
 * process's Clock.
 */
import { describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import { every } from '../../shared/periodic-task.js'
import type { ClusterService } from '../cluster/cluster-service.js'
import { CoordinatorHandOff } from './coordinator-hand-off.js'
import { CoordinatorTakeover } from './coordinator-takeover.js'
import { CsvHostContext } from './csv-host-context.js'
import { serveCsvOperator } from './csv-operator-requests.js'
import { serveCsvPeers } from './csv-peer-requests.js'
import { serveCsvRemoval } from './csv-removal.js'
import type { CsvEntry } from './csv-record.js'
import { CsvRegionMetadata } from './csv-region-metadata.js'
import type { CsvVolume } from './csv-volume.js'
import { CsvVolumes } from './csv-volumes.js'

export { CSV_IO_TIMEOUT_MS } from './csv-host-context.js'
export { CSV_ADMIN_TIMEOUT_MS } from './csv-operator-requests.js'
const PROBE_INTERVAL_MS = 1000
const RECONCILE_INTERVAL_MS = 500

export interface CsvHost {
  /** The I/O path of CSV `name` on this host (what a VM disk writer uses); throws if there is no such CSV. */
  volume(name: string): CsvVolume
  /** CSV `name` as this host's copy of the cluster database has it; throws HVLAB_E_NOT_FOUND if there is none. */
  entry(name: string): CsvEntry
}

export function startCsvHost(p: LabProcess, cluster: ClusterService): CsvHost {
  const ctx = new CsvHostContext(p, cluster)
  const metadata = new CsvRegionMetadata(ctx)
  const volumes = new CsvVolumes(ctx, metadata)
  serveCsvOperator(ctx, volumes, metadata)
  serveCsvPeers(ctx, volumes, metadata)
  serveCsvRemoval(ctx, metadata)
  const takeover = new CoordinatorTakeover(ctx)
  const handOff = new CoordinatorHandOff(ctx, volumes)
  const onError = (e: unknown): void => ctx.log.warn({ err: describeError(e) }, 'CSV background task failed')
  cluster.onClusterEvent((e) => {
    if (e.kind === 'cluster.view-changed') takeover.reconcile()
  })
  // On the host's tick grid: both run in the wake-ups of its ticks.
  every(p.clock, RECONCILE_INTERVAL_MS, () => takeover.reconcile(), onError, p.tick_offset_ms)
  every(p.clock, PROBE_INTERVAL_MS, () => checkPaths(ctx, volumes, handOff), onError, p.tick_offset_ms)
  p.addStatus(() => ({ csv: volumes.states().volumes }))
  return { volume: (name) => volumes.volume(name), entry: (name) => ctx.mustExist(name) }
}

/** Each CSV in turn: this host's path to its array (back to Direct when it works again), then, as its coordinator node, the hand-off check. */
async function checkPaths(ctx: CsvHostContext, volumes: CsvVolumes, handOff: CoordinatorHandOff): Promise<void> {
  for (const name of ctx.db.all().csvs.keys()) {
    await volumes.volume(name).probe()
    await handOff.checkOwnPath(name)
  }
}
