/**
 * `hvlab vm deps NAME`: the VM's dependency chain — vm → each disk (volume, size) →
 * remote-copy group (mode; one for all the VM's disks) → each array's side of it (role,
 * started, link, volume state, bytes behind). PURE: the CLI gathers the arrays' answers and this builds and prints the tree.
 */
import type { VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { formatBytes, worstVolumeState } from '../../agent/clx/clx-decision.js'
import { vmRegions, vmVolumes } from '../../agent/clx/disk-target.js'

export type ArraySide =
  | {
      array: string
      natural: 'primary' | 'secondary'
      reachable: true
      role: RcGroupStatus['role'] | null
      started: boolean
      link_up: boolean
      state: string | null
      bytes_behind: number
    }
  | { array: string; natural: 'primary' | 'secondary'; reachable: false; error: string }

export interface VmDeps {
  vm: string
  state: string
  owner: string | null
  memory_mib: number
  disks: Array<
    | { kind: 'local' }
    | { kind: 'csv'; csv: string; region: string; volume: string; array: string; size_bytes: number }
    | {
        kind: 'replicated'
        volume: string
        size_bytes: number
        group: string
        mode: 'sync' | 'periodic'
        presented_to: string[]
        arrays: ArraySide[]
      }
  >
}

/** What an array said about the group: its status (undefined: no such group) or why it did not answer. */
export type ArrayAnswer = { status: RcGroupStatus | undefined } | { error: string }

export function vmDeps(role: VmRoleRecord, answers: Readonly<Record<string, ArrayAnswer>>): VmDeps {
  const base = { vm: role.name, state: role.state, owner: role.owner, memory_mib: role.memory_mib }
  const spec = role.storage ?? null
  if (spec === null || spec.kind === 'local') return { ...base, disks: [{ kind: 'local' }] }
  if (spec.kind === 'csv')
    return {
      ...base,
      disks: vmRegions(spec).map((region) => ({
        kind: 'csv' as const,
        csv: spec.csv,
        region,
        volume: spec.volume,
        array: spec.array,
        size_bytes: spec.size_bytes,
      })),
    }
  const side = (array: string, natural: 'primary' | 'secondary'): ArraySide => {
    const a = answers[array]
    if (a === undefined) return { array, natural, reachable: false, error: 'not asked' }
    if ('error' in a) return { array, natural, reachable: false, error: a.error }
    const s = a.status
    if (s === undefined)
      return { array, natural, reachable: true, role: null, started: false, link_up: false, state: null, bytes_behind: 0 }
    return {
      array,
      natural,
      reachable: true,
      role: s.role,
      started: s.started,
      link_up: s.link_up,
      state: worstVolumeState(s) ?? null,
      bytes_behind: s.bytes_behind,
    }
  }
  const arrays = [side(spec.arrays.primary, 'primary'), side(spec.arrays.secondary, 'secondary')]
  return {
    ...base,
    disks: vmVolumes(spec).map((volume) => ({
      kind: 'replicated' as const,
      volume,
      size_bytes: spec.size_bytes,
      group: spec.group,
      mode: spec.mode,
      presented_to: [...spec.hosts],
      arrays,
    })),
  }
}

export function formatVmDepsTree(d: VmDeps): string {
  const lines = [`vm ${d.vm} (${d.state}${d.owner ? ` on ${d.owner}` : ''}, ${d.memory_mib} MiB)`]
  d.disks.forEach((disk, n) => {
    const last = n === d.disks.length - 1
    const [head, under] = last ? ['└─', '   '] : ['├─', '│  ']
    const which = d.disks.length > 1 ? ` ${n}` : '' // a VM of one disk: no number
    if (disk.kind === 'local') {
      lines.push(`${head} disk: local to its host (no shared storage, no storage failover)`)
      return
    }
    if (disk.kind === 'csv') {
      lines.push(`${head} disk${which}: region ${disk.region} (${formatBytes(disk.size_bytes)}) of Cluster Shared Volume ${disk.csv}`)
      lines.push(
        `${under}└─ volume ${disk.volume} on array ${disk.array}, read and written by every node (no storage failover on a move; \`hvlab csv list\` shows each node's path)`,
      )
      return
    }
    lines.push(
      `${head} disk${which ? `${which}:` : ''} ${disk.volume} (${formatBytes(disk.size_bytes)}), presented to ${disk.presented_to.join(', ')}`,
    )
    lines.push(
      `${under}└─ remote copy group ${disk.group} (${disk.mode === 'sync' ? 'synchronous' : 'asynchronous periodic'}) — storage resource (CLX)`,
    )
    disk.arrays.forEach((a, i) => {
      const branch = i === disk.arrays.length - 1 ? '└─' : '├─'
      const what = !a.reachable
        ? `did not answer: ${a.error}`
        : a.role === null
          ? 'has no side of this group'
          : `${a.role}, ${a.started ? 'started' : 'stopped'}, link ${a.link_up ? 'up' : 'down'}, ${a.state ?? 'no volumes'}, ${formatBytes(a.bytes_behind)} behind`
      lines.push(`${under}   ${branch} array ${a.array} (natural ${a.natural}): ${what}`)
    })
  })
  return lines.join('\n')
}
