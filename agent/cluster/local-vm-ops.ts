/**
 * Starts and stops of VMs on this host, as the coordinator asks for them: each VM's
 * operations run in the order received (even while a start waits for CLX), a VM with a
 * replicated disk first has CLX make its disk writable in this site, a VM on a CSV
 * region starts at once (every node writes a CSV).
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { GuestLoadSetting, VmStorageSpecRecord } from '../../shared/protocol/cluster-messages.js'
import type { ClxService } from '../clx/clx-service.js'
import { csvDiskTargets, diskTargetsFor } from '../clx/disk-target.js'
import type { VmAgent, VmOpResult } from './vm-agent.js'

export interface StartRequest {
  role: string
  op: number
  epoch: number
  memory_mib: number
  storage?: VmStorageSpecRecord | null | undefined
  force_storage?: boolean | undefined
  /** The guest load the role keeps, applied as the VM starts. */
  load?: GuestLoadSetting | undefined
}

export type StartResult = VmOpResult & { storage_refused?: boolean }

export interface LocalVmOpsDeps {
  agent: VmAgent
  clx: ClxService
  /** This host's site (where CLX makes a replicated disk writable). */
  site: string
  log: { warn(o: object, msg: string): void }
}

export class LocalVmOps {
  private readonly inOrder = perVmOrder()
  constructor(private readonly deps: LocalVmOpsDeps) {}

  /** Starts `r.role` here for `from` (the coordinator that asked). */
  start(r: StartRequest, from: string): Promise<StartResult> {
    return this.inOrder(r.role, () => this.startNow(r, from))
  }

  stop(role: string, op: number, reason: string): Promise<VmOpResult> {
    return this.inOrder(role, async () => this.deps.agent.stopVm(role, op, reason))
  }

  private async startNow(r: StartRequest, from: string): Promise<StartResult> {
    const { agent, clx } = this.deps
    const spec = r.storage ?? null
    const load = r.load ?? null
    if (spec?.kind === 'csv') return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from, csvDiskTargets(spec), load) // every node writes a CSV: nothing to prepare
    if (spec?.kind !== 'replicated') return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from, [], load)
    try {
      const prepared = await clx.prepareForStart(r.role, spec.group, this.deps.site, { force: r.force_storage === true })
      return agent.startVm(r.role, r.memory_mib, r.op, r.epoch, from, diskTargetsFor(spec, prepared), load)
    } catch (e) {
      this.deps.log.warn({ err: describeError(e), role: r.role }, 'CLX did not make the disk writable here; the start fails')
      return { ok: false, reason: describeError(e), storage_refused: e instanceof HvlabError && e.code === 'HVLAB_E_REFUSED' }
    }
  }
}

/** Runs each VM's operations one after another (in the order asked), different VMs independently. */
export function perVmOrder(): <T>(vm: string, op: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>()
  return (vm, op) => {
    const run = (tails.get(vm) ?? Promise.resolve()).then(op, op)
    const tail = run.catch(() => undefined)
    tails.set(vm, tail)
    void tail.then(() => {
      if (tails.get(vm) === tail) tails.delete(vm)
    })
    return run
  }
}
