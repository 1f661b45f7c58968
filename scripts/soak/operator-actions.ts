/**
 * The operator's actions a soak mixes in between faults, as the CLI does them: a live
 * migration (`vm move`), a quick move (`vm move --quick`), a drain (`node pause --drain`,
 * then `node resume`), and a remote-copy switchover (a live migration to a host of the
 * other site, which switches the VM's synchronous group over inside the blackout). A
 * refusal is an outcome, not a failure of the run: the lab may be recovering from a fault.
 */
import { ownerOf, vmListNow } from '../cli/vm-queries.js'
import type { OperatorPlan } from './fault-schedule.js'
import { OP_SAID_CHARS_MAX, type RecordOf } from './history.js'
import type { SoakLab } from './soak-lab.js'

/** How long an action's command may wait for its outcome. */
const ACTION_TIMEOUT_S = '60'

export interface HostSite {
  name: string
  site: string
}

export async function runOperatorAction(lab: SoakLab, plan: OperatorPlan, hosts: readonly HostSite[]): Promise<RecordOf<'op'>> {
  const start_ms = Date.now()
  const { target, args, after } = await commandOf(lab, plan, hosts)
  const r =
    args === null
      ? { exit: 1, error_code: 'HVLAB_E_STATE', stderr: 'nothing to act on now', stdout: '' }
      : await lab.cli(...args, '--timeout-s', ACTION_TIMEOUT_S)
  if (after) await lab.cli(...after)
  return {
    t: 'op',
    kind: plan.kind,
    target,
    start_ms,
    end_ms: Date.now(),
    ok: r.exit === 0,
    error_code: r.exit === 0 ? null : r.error_code,
    // a refusal goes to stderr; a move that ran and failed prints its result, on stdout
    ...(r.exit === 0 ? {} : { said: (r.stderr.trim() || r.stdout.trim()).slice(0, OP_SAID_CHARS_MAX) }),
  }
}

interface ActionCommand {
  target: string
  /** null: nothing to do now (no running VM or host to act on). */
  args: string[] | null
  /** Run afterwards whatever happened (a drained node is resumed). */
  after?: string[]
}

async function commandOf(lab: SoakLab, plan: OperatorPlan, hosts: readonly HostSite[]): Promise<ActionCommand> {
  if (plan.kind === 'drain')
    return { target: plan.host, args: ['node', 'pause', plan.host, '--drain'], after: ['node', 'resume', plan.host] }
  if (plan.kind === 'live-migrate') return { target: `${plan.vm} → ${plan.to}`, args: ['vm', 'move', plan.vm, '--to', plan.to] }
  if (plan.kind === 'quick-move') return { target: `${plan.vm} → ${plan.to}`, args: ['vm', 'move', plan.vm, '--to', plan.to, '--quick'] }
  const owner = await ownerOf(lab.control(), plan.vm).catch(() => null)
  const site = hosts.find((h) => h.name === owner)?.site
  const to = hosts.filter((h) => h.site !== site).sort((a, b) => a.name.localeCompare(b.name))[0]?.name
  if (owner === null || to === undefined) return { target: plan.vm, args: null }
  return { target: `${plan.vm} → ${to}`, args: ['vm', 'move', plan.vm, '--to', to] }
}

/** Whether every VM of `vms` is running somewhere now. */
export async function allRunning(lab: SoakLab, vms: readonly string[]): Promise<boolean> {
  const list = await vmListNow(lab.control()).catch(() => null)
  if (!list) return false
  return vms.every((vm) => list.roles.some((r) => r.name === vm && r.state === 'running'))
}
