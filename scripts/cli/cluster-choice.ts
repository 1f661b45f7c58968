/**
 * Which failover cluster the cluster, vm, node, CSV and replica commands address: the lab's
 * first (the topology's top-level one) unless `hvlab --cluster NAME …` names another (a lab
 * of several clusters: topology `clusters`). One choice per run of the program: program.ts
 * sets it before the command runs.
 */
import { HvlabError } from '../../shared/errors.js'
import type { Topology } from '../../shared/topology.js'
import type { LabClusterStatus, LabStatus, ProcessStatus } from '../controller/lab-controller.js'

let chosen: string | null = null

/** `hvlab --cluster NAME`; null: the lab's first cluster. */
export function chooseCluster(name: string | null): void {
  chosen = name
}

/**
 * Runs `f` with the commands addressing cluster `name` (a command that works on two
 * clusters: Replica from one to the other), then the chosen one again.
 */
export async function inCluster<T>(name: string, f: () => Promise<T>): Promise<T> {
  const before = chosen
  chosen = name
  try {
    return await f()
  } finally {
    chosen = before
  }
}

/** The name `--cluster` gave, or null (the lab's first cluster). */
export const chosenClusterName = (): string | null => chosen

/** The hosts of the chosen cluster in `lab` (up or not); HVLAB_E_USAGE for a cluster the lab does not have. */
export function chosenHosts(lab: Pick<LabStatus, 'processes'>): ProcessStatus[] {
  const hosts = lab.processes.filter((p) => p.role === 'host')
  const first = hosts[0]?.cluster ?? null // the first cluster's hosts come first (processesOf)
  const name = chosen ?? first
  const mine = hosts.filter((p) => (p.cluster ?? first) === name)
  if (chosen !== null && mine.length === 0) {
    const names = [...new Set(hosts.map((p) => p.cluster ?? first))].join(', ')
    throw new HvlabError('HVLAB_E_USAGE', `--cluster ${chosen}: this lab has no failover cluster of that name (its clusters: ${names})`)
  }
  return mine
}

/** The up hosts of the chosen cluster in `lab`. */
export const chosenHostsUp = (lab: Pick<LabStatus, 'processes'>): string[] =>
  chosenHosts(lab)
    .filter((p) => p.state === 'up')
    .map((p) => p.name)

/** The chosen cluster's part of the lab's status (the witness, each host's view), if the controller has it. */
export function chosenClusterStatus(lab: Pick<LabStatus, 'cluster' | 'clusters'>): LabClusterStatus | undefined {
  if (chosen === null) return lab.cluster
  return [lab.cluster, ...(lab.clusters ?? [])].find((c) => c?.name === chosen)
}

/** The lab's topology in `file` as the chosen cluster's processes see it (shared/topology.ts clusterView). */
export async function chosenTopology(file: string): Promise<Topology> {
  const { clusterView, loadTopology } = await import('../../shared/topology.js') // not when hvlab starts: it brings zod
  const t = loadTopology(file)
  return chosen === null ? t : clusterView(t, chosen)
}
