/**
 * `hvlab cluster validate`, the checks (pure): what the validation wizard of the seeds
 * looks at, from what the lab can see now — every node sees every other on the heartbeat
 * network (each host's own cluster status, and its live peer links: members heartbeat only
 * their coordinator, so a cut between two members shows in the links alone), the witness is reachable from every
 * site, each VM's owners are nodes of the cluster, and each VM's shared disk: it is
 * presented to every host that may own the VM (as the arrays' LUN masking has it), it
 * exists on both arrays of its remote-copy group (or on its CSV's array), and no two VMs
 * share a group.
 */
import type { ClusterStatus, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'

export type CheckResult = 'pass' | 'fail' | 'warn' | 'skip'

export interface ValidationCheck {
  readonly area: string
  readonly name: string
  readonly result: CheckResult
  /** What was found, for people; for a failure, what to do. */
  readonly detail: string
}

export interface ValidationInput {
  /** Every host of the topology and its site. */
  hosts: readonly { name: string; site: string }[]
  witness: { name: string; site: string } | null
  /** Each host's own cluster status (missing: it did not answer). */
  statuses: Readonly<Record<string, ClusterStatus>>
  /** The peers each host has a live link to now (the lab's status); absent: not known. */
  links?: Readonly<Record<string, readonly string[]>>
  roles: readonly VmRoleRecord[] | null
  /**
   * Each array's volumes as it lists them now, with the hosts each is presented to (LUN
   * masking), or why it did not answer; absent: not asked.
   */
  arrays?: Readonly<
    Record<string, { volumes: readonly string[]; presented?: Readonly<Record<string, readonly string[]>> } | { error: string }>
  >
}

export function validateCluster(input: ValidationInput): ValidationCheck[] {
  return [...heartbeatChecks(input), ...witnessChecks(input), ...roleChecks(input), ...storageChecks(input)]
}

function heartbeatChecks(input: ValidationInput): ValidationCheck[] {
  const out: ValidationCheck[] = []
  for (const h of input.hosts) {
    const s = input.statuses[h.name]
    if (s === undefined) {
      out.push({
        area: 'network',
        name: `${h.name} sees every node`,
        result: 'fail',
        detail: `${h.name} did not answer; start it (\`hvlab restart ${h.name}\`) and validate again`,
      })
      continue
    }
    const links = input.links?.[h.name]
    const unseen = input.hosts
      .filter((o) => o.name !== h.name)
      .filter((o) => s.nodes.find((n) => n.name === o.name)?.state === 'Down' || (links !== undefined && !links.includes(o.name)))
      .map((o) => o.name)
    out.push(
      unseen.length === 0
        ? {
            area: 'network',
            name: `${h.name} sees every node`,
            result: 'pass',
            detail: `heartbeats arrive from all ${input.hosts.length - 1} other nodes`,
          }
        : {
            area: 'network',
            name: `${h.name} sees every node`,
            result: 'fail',
            detail: `no heartbeats from ${unseen.join(', ')}; check the heartbeat network between them (\`hvlab status\` shows partitions; \`hvlab heal\`)`,
          },
    )
  }
  return out
}

function witnessChecks(input: ValidationInput): ValidationCheck[] {
  if (input.witness === null)
    return [
      {
        area: 'quorum',
        name: 'file-share witness',
        result: 'warn',
        detail: 'the cluster has no witness; with an even number of nodes a site failure can stop it',
      },
    ]
  const sites = [...new Set(input.hosts.map((h) => h.site))].sort()
  return sites.map((site) => {
    const hosts = input.hosts.filter((h) => h.site === site)
    const reach = hosts.filter((h) => input.statuses[h.name]?.witness?.reachable === true).map((h) => h.name)
    const name = `witness ${input.witness!.name} reachable from ${site}`
    if (reach.length === hosts.length) return { area: 'quorum', name, result: 'pass', detail: `reachable from ${reach.join(', ')}` }
    if (reach.length > 0)
      return {
        area: 'quorum',
        name,
        result: 'warn',
        detail: `reachable from ${reach.join(', ')} only; check the others' connection to ${input.witness!.site}`,
      }
    return {
      area: 'quorum',
      name,
      result: 'fail',
      detail: `no host of ${site} reaches ${input.witness!.name}; without it ${site} cannot win a tie — check the link to ${input.witness!.site}`,
    }
  })
}

function roleChecks(input: ValidationInput): ValidationCheck[] {
  if (input.roles === null)
    return [
      {
        area: 'roles',
        name: 'vm owners',
        result: 'skip',
        detail: 'no coordinator answered for the vm roles; validate again once the cluster has quorum',
      },
    ]
  if (input.roles.length === 0) return [{ area: 'roles', name: 'vm owners', result: 'pass', detail: 'no vm roles yet' }]
  const nodes = new Set(input.hosts.map((h) => h.name))
  return input.roles.map((r) => {
    const owners = [...r.preferred_owners, ...(r.possible_owners ?? [])]
    const strangers = [...new Set(owners.filter((o) => !nodes.has(o)))]
    const name = `vm ${r.name}: possible owners are cluster nodes`
    if (strangers.length > 0)
      return {
        area: 'roles',
        name,
        result: 'fail',
        detail: `${strangers.join(', ')} ${strangers.length === 1 ? 'is' : 'are'} not a node of this cluster; recreate the vm with owners from ${[...nodes].join(', ')}`,
      }
    const possible = r.possible_owners ?? [...nodes]
    return {
      area: 'roles',
      name,
      result: possible.length < 2 ? 'warn' : 'pass',
      detail: possible.length < 2 ? `only ${possible.join('')} may run it: it cannot fail over` : `may run on ${possible.join(', ')}`,
    }
  })
}

function storageChecks(input: ValidationInput): ValidationCheck[] {
  if (input.roles === null || input.roles.length === 0) return []
  const replicated = input.roles.flatMap((r) => (r.storage?.kind === 'replicated' ? [{ role: r, spec: r.storage }] : []))
  const onCsv = input.roles.flatMap((r) => (r.storage?.kind === 'csv' ? [{ role: r, spec: r.storage }] : []))
  if (replicated.length === 0 && onCsv.length === 0) {
    return [
      {
        area: 'storage',
        name: "each vm's storage is presented to all its possible owners",
        result: 'skip',
        detail: 'no vm has a shared disk (all local); nothing to check',
      },
    ]
  }
  return [
    ...replicated.flatMap(({ role, spec }) =>
      [spec.volume, ...(spec.data_volumes ?? [])].map((volume) => replicatedDiskCheck(input, role, spec, volume)),
    ),
    ...onCsv.map(({ role, spec }) => csvDiskCheck(input, role, spec)),
    groupPerVmCheck(replicated),
  ]
}

type ReplicatedStorage = Extract<NonNullable<VmRoleRecord['storage']>, { kind: 'replicated' }>
type CsvStorage = Extract<NonNullable<VmRoleRecord['storage']>, { kind: 'csv' }>

/** The hosts that may own `role`: its possible owners, or every node. */
const ownersOf = (input: ValidationInput, role: VmRoleRecord): readonly string[] => role.possible_owners ?? input.hosts.map((h) => h.name)

/** What each array says about `volume`: problems (absent, no answer) and hosts of `owners` it is not presented to. */
function volumeOnArrays(
  input: ValidationInput,
  arrays: readonly string[],
  volume: string,
  owners: readonly string[],
): { problems: string[]; unpresented: string[] } {
  const problems: string[] = []
  const unpresented: string[] = []
  for (const array of arrays) {
    const a = input.arrays?.[array]
    if (a === undefined) continue
    if ('error' in a) {
      problems.push(`array ${array} did not answer (${a.error})`)
      continue
    }
    if (!a.volumes.includes(volume)) {
      problems.push(`array ${array} has no volume ${volume}`)
      continue
    }
    const presented = a.presented?.[volume]
    const missing = presented === undefined ? [] : owners.filter((o) => !presented.includes(o))
    if (missing.length > 0) unpresented.push(`${array} does not present it to ${missing.join(', ')}`)
  }
  return { problems, unpresented }
}

/** One of the VM's disks, `volume`, on both arrays, presented to every host that may own the VM. */
function replicatedDiskCheck(input: ValidationInput, role: VmRoleRecord, spec: ReplicatedStorage, volume: string): ValidationCheck {
  const name = `vm ${role.name}: disk ${volume} presented to all its possible owners`
  const owners = ownersOf(input, role)
  const missing = owners.filter((o) => !spec.hosts.includes(o))
  const { problems, unpresented } = volumeOnArrays(input, [spec.arrays.primary, spec.arrays.secondary], volume, owners)
  if (missing.length > 0 || unpresented.length > 0) {
    const what = missing.length > 0 ? `not presented to ${missing.join(', ')}, which may own it` : unpresented.join('; ')
    return {
      area: 'storage',
      name,
      result: 'fail',
      detail: `${what}; present it on both arrays (\`hvlab array present ${spec.arrays.primary} ${volume} HOST\`, and the same on ${spec.arrays.secondary}), or narrow the vm's possible owners`,
    }
  }
  if (problems.length > 0)
    return {
      area: 'storage',
      name,
      result: 'fail',
      detail: `${problems.join('; ')}; the disk of vm ${role.name} is incomplete — check \`hvlab vm deps ${role.name}\` and \`hvlab rcopy status ${spec.group}\``,
    }
  return {
    area: 'storage',
    name,
    result: 'pass',
    detail: `presented to ${owners.join(', ')} on ${spec.arrays.primary} and ${spec.arrays.secondary}${input.arrays ? ' (as both arrays list their LUN presentations)' : ''}`,
  }
}

function csvDiskCheck(input: ValidationInput, role: VmRoleRecord, spec: CsvStorage): ValidationCheck {
  const name = `vm ${role.name}: Cluster Shared Volume ${spec.csv} presented to all its possible owners`
  const owners = ownersOf(input, role)
  const { problems, unpresented } = volumeOnArrays(input, [spec.array], spec.volume, owners)
  const bad = [...unpresented, ...problems]
  if (bad.length > 0)
    return {
      area: 'storage',
      name,
      result: 'fail',
      detail: `${bad.join('; ')}; every node must reach a CSV (\`hvlab array present ${spec.array} ${spec.volume} HOST\`)`,
    }
  return {
    area: 'storage',
    name,
    result: 'pass',
    detail: input.arrays
      ? `${spec.volume} on ${spec.array} is presented to ${owners.join(', ')}`
      : `${spec.volume} on ${spec.array} (the array was not asked)`,
  }
}

/** CLX fails a remote-copy group over as a whole: two vms in one group cannot move between sites alone. */
function groupPerVmCheck(replicated: readonly { role: VmRoleRecord; spec: ReplicatedStorage }[]): ValidationCheck {
  const byGroup = new Map<string, string[]>()
  for (const { role, spec } of replicated) byGroup.set(spec.group, [...(byGroup.get(spec.group) ?? []), role.name])
  const shared = [...byGroup].filter(([, vms]) => vms.length > 1)
  if (shared.length === 0)
    return {
      area: 'storage',
      name: 'one vm per remote-copy group',
      result: 'pass',
      detail: `${byGroup.size} group(s), each holding one vm's disks`,
    }
  return {
    area: 'storage',
    name: 'one vm per remote-copy group',
    result: 'fail',
    detail: `${shared.map(([g, vms]) => `${g} holds ${vms.join(', ')}`).join('; ')}: CLX fails a group over as a whole, so these vms cannot move between sites alone; give each vm a group of its own`,
  }
}

/** The overall verdict: failed if any check failed. */
export function validationPassed(checks: readonly ValidationCheck[]): boolean {
  return checks.every((c) => c.result !== 'fail')
}
