/**
 * Removes a VM's replicated disks (what vm-storage.ts provisioned), once its role is gone:
 * the remote-copy group `rc-<vm>` is stopped where it is a source, its volumes dismissed
 * from it on both arrays, the group removed from both, then on each array each volume is
 * unpresented from every host and removed. Each step looks first and does only what is
 * there, so running it again (or by hand, with `hvlab rcopy` and `hvlab array`) finishes
 * the job. It answers with what it removed, in order, and — when a step failed — that
 * step's error and what it did not reach.
 */
import { sleepOn } from '../../shared/clock.js'
import { HvlabError, describeError, isHvlabError } from '../../shared/errors.js'
import type { VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { RemovableObject } from '../../shared/protocol/removal-messages.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'
import { expectReply, groupStatus, type ArrayAdminRequest } from './array-admin.js'
import { vmVolumes } from './disk-target.js'
import { VM_DISK_POLL_MS, VM_DISK_REQUEST_TIMEOUT_MS_DEFAULT, type VmStorageContext } from './vm-storage.js'

type Replicated = Extract<VmStorageSpecRecord, { kind: 'replicated' }>

/** How long a step refused for the group's state is retried (the target hears of a stop in the source's next hello). */
export const DISK_REMOVAL_SETTLE_MS_DEFAULT = 10_000

export interface DiskRemoval {
  removed: RemovableObject[]
  kept: RemovableObject[]
  unfinished: { code: HvlabError['code']; reason: string } | null
}

/** One step of the removal: what it takes away (null: none, e.g. stopping the group) and how. */
interface Step {
  object: RemovableObject | null
  run(): Promise<void>
}

export const diskObject = (
  kind: RemovableObject['kind'],
  name: string,
  on: string | null,
  extra: { host?: string; group?: string } = {},
): RemovableObject => ({ kind, name, on, host: extra.host ?? null, group: extra.group ?? null })

/** What stays of a replicated disk that is kept: its group and its volumes on both arrays. */
export function replicatedDiskObjects(spec: Replicated): RemovableObject[] {
  const arrays = [spec.arrays.primary, spec.arrays.secondary]
  return [
    ...arrays.map((a) => diskObject('rc-group', spec.group, a)),
    ...arrays.flatMap((a) => vmVolumes(spec).map((v) => diskObject('volume', v, a))),
  ]
}

export async function removeReplicatedDisk(
  ctx: VmStorageContext,
  spec: Replicated,
  settle_ms = DISK_REMOVAL_SETTLE_MS_DEFAULT,
): Promise<DiskRemoval> {
  const run = new ReplicatedDiskRemoval(ctx, spec, settle_ms)
  let steps: Step[]
  try {
    steps = await run.plan()
  } catch (e) {
    return { removed: [], kept: replicatedDiskObjects(spec), unfinished: failure(e) }
  }
  const removed: RemovableObject[] = []
  for (const [i, step] of steps.entries()) {
    try {
      await step.run()
    } catch (e) {
      const kept = steps.slice(i).flatMap((s) => (s.object ? [s.object] : []))
      return { removed, kept, unfinished: failure(e) }
    }
    if (step.object) removed.push(step.object)
  }
  return { removed, kept: [], unfinished: null }
}

function failure(e: unknown): { code: HvlabError['code']; reason: string } {
  return { code: isHvlabError(e) ? e.code : 'HVLAB_E_INTERNAL', reason: describeError(e).slice(0, 1024) }
}

const isSource = (s: RcGroupStatus): boolean => s.role === 'primary' || s.role === 'primary-rev'

class ReplicatedDiskRemoval {
  private readonly timeout_ms: number
  private readonly arrays: string[]

  constructor(
    private readonly ctx: VmStorageContext,
    private readonly spec: Replicated,
    private readonly settle_ms: number,
  ) {
    this.timeout_ms = ctx.request_timeout_ms ?? VM_DISK_REQUEST_TIMEOUT_MS_DEFAULT
    this.arrays = [spec.arrays.primary, spec.arrays.secondary]
  }

  /** Looks at both arrays and lists the steps for what is there, in the order they must run. */
  async plan(): Promise<Step[]> {
    const { group } = this.spec
    const volumes = vmVolumes(this.spec)
    const sides = await Promise.all(this.arrays.map(async (array) => ({ array, status: await this.status(array) })))
    const held = sides.filter((s): s is { array: string; status: RcGroupStatus } => s.status !== undefined)
    const steps: Step[] = held
      .filter((s) => isSource(s.status) && s.status.started)
      .map((s) => ({ object: null, run: () => this.ask(s.array, { t: 'rc-verb', group, verb: 'stop' }) }))
    for (const s of held)
      for (const volume of volumes)
        if (s.status.volumes.some((v) => v.volume === volume))
          steps.push(this.settled(diskObject('rc-volume', volume, s.array, { group }), { t: 'rc-dismiss', group, volume }))
    for (const s of held) steps.push(this.settled(diskObject('rc-group', group, s.array), { t: 'rc-remove', group }))
    for (const array of this.arrays) steps.push(...(await this.volumeSteps(array, volumes)))
    return steps
  }

  /** Unpresent each of `volumes` from each host it is presented to on `array`, then remove it. */
  private async volumeSteps(array: string, volumes: readonly string[]): Promise<Step[]> {
    const listing = expectReply(array, 'volume-list', await this.request(array, { t: 'volume-list' }), 'volume-listing')
    return volumes.flatMap((volume) => {
      const v = listing.volumes.find((x) => x.volume === volume)
      return v === undefined ? [] : this.removeVolume(array, volume, v.presented_to)
    })
  }

  private removeVolume(array: string, volume: string, presented_to: readonly string[]): Step[] {
    return [
      ...presented_to.map((host) => ({
        object: diskObject('lun', volume, array, { host }),
        run: () => this.ask(array, { t: 'lun-unpresent', volume, host }),
      })),
      { object: diskObject('volume', volume, array), run: () => this.ask(array, { t: 'volume-remove', volume }) },
    ]
  }

  /** A step on the group, retried while the array refuses it for the group's state (a stop still reaching the target). */
  private settled(object: RemovableObject, m: ArrayAdminRequest): Step {
    return {
      object,
      run: async () => {
        const deadline_ms = this.ctx.clock.now() + this.settle_ms
        for (;;) {
          try {
            return await this.ask(object.on!, m)
          } catch (e) {
            if (!HvlabError.has(e, 'HVLAB_E_STATE') || this.ctx.clock.now() >= deadline_ms) throw e
          }
          await sleepOn(this.ctx.clock, VM_DISK_POLL_MS)
        }
      },
    }
  }

  private status(array: string): Promise<RcGroupStatus | undefined> {
    return groupStatus(this.ctx.admin, array, this.spec.group, this.timeout_ms)
  }

  private request(array: string, m: ArrayAdminRequest) {
    return this.ctx.admin.request(array, m, this.timeout_ms)
  }

  private async ask(array: string, m: ArrayAdminRequest): Promise<void> {
    await this.request(array, m)
  }
}
