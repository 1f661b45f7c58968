/**
 * Drives an InDoubtSettlement (in-doubt-settlement.ts) in a host process, through a
 * MachineDriver (shared/machine/driver.ts) with a handler per effect kind: questions go
 * to the destination over the mesh (`vm-inventory-request`), the retry timer goes on the
 * process's Clock, the cluster view (the destination's membership, the epoch, this host's
 * lease) is read before each decision, and the outcome releases or resumes the paused source copy. Resolves whether
 * the destination runs the VM.
 */
import { describeError } from '../../shared/errors.js'
import type { LabProcess } from '../../shared/lab-process.js'
import type { VmAgent } from '../cluster/vm-agent.js'
import type { VmInstance } from '../vm/vm-instance.js'
import { MachineDriver } from '../../shared/machine/driver.js'
import { InDoubtSettlement, type InDoubtEffect, type InDoubtInput } from './in-doubt-settlement.js'

export const IN_DOUBT_ASK_INTERVAL_MS = 1000
export const IN_DOUBT_ASK_TIMEOUT_MS = 2000

export interface InDoubtShellDeps {
  agent: VmAgent
  /** Is `node` in the cluster view now? */
  isMember(node: string): boolean
  /** The epoch of this host's cluster view (absent: taken as one view for good). */
  viewEpoch?(): number
  holdsLease(now_ms: number): boolean
  roles_free_after_ms: number
}

export interface InDoubtCase {
  vm: VmInstance
  role: string
  to: string
  op: number
}

/** Settles one migration in doubt; resolves true when the destination runs the VM (released here), false when it resumed here. */
export function settleInDoubt(p: LabProcess, deps: InDoubtShellDeps, c: InDoubtCase): Promise<boolean> {
  const log = p.log.child({ component: 'migration-host' })
  const machine = new InDoubtSettlement({
    host: p.name,
    vm: c.role,
    destination: c.to,
    op: c.op,
    ask_interval_ms: IN_DOUBT_ASK_INTERVAL_MS,
    ask_timeout_ms: IN_DOUBT_ASK_TIMEOUT_MS,
    roles_free_after_ms: deps.roles_free_after_ms,
  })
  return new Promise<boolean>((resolve) => {
    const driver = new MachineDriver<InDoubtInput, InDoubtEffect>({
      step: (input) => machine.step(input, p.clock.now()),
      handlers: {
        ask: (e) => void Promise.resolve().then(() => ask(e.ask, e.timeout_ms)),
        'set-timer': (e) => void p.clock.setTimer(e.at_ms - p.clock.now(), () => driver.feed({ kind: 'timer' })),
        emit: (e) => p.emitEvent(e.event.kind, e.event.details),
        release: () => {
          deps.agent.releaseVm(c.role, c.to)
          resolve(true)
        },
        resume: () => {
          c.vm.resume()
          resolve(false)
        },
      },
    })
    /** A question with no answer: first what the cluster view says of the destination now. */
    const unanswered = (ask: number): void => {
      const view = { member: deps.isMember(c.to), epoch: deps.viewEpoch?.() ?? 0, leased: deps.holdsLease(p.clock.now()) }
      driver.feed({ kind: 'membership', ...view })
      driver.feed({ kind: 'ask-failed', ask })
    }
    const ask = async (ask: number, timeout_ms: number): Promise<void> => {
      const conn = p.mesh.connection(c.to)
      if (!conn?.isOpen) return unanswered(ask)
      try {
        const r = await conn.request({ t: 'vm-inventory-request', from: p.name }, { timeout_ms })
        if (r.message.t === 'vm-inventory-reply') return driver.feed({ kind: 'inventory', ask, vms: r.message.vms })
      } catch (e) {
        log.warn({ err: describeError(e), vm: c.role, to: c.to }, 'migration in doubt: the destination did not answer yet')
      }
      unanswered(ask)
    }
    driver.feed({ kind: 'start' })
  })
}
