/**
 * What a host tells the coordinator about its own VMs without being asked: a VM that
 * failed here, and how a migration from here ended. A report to this host itself goes
 * straight to its RoleService. A migration report is retried on the Clock for a while
 * (a view change, e.g. the destination was killed, may cross it); a failure report is
 * not (the coordinator's next inventory finds the VM).
 */
import type { Clock } from '../../shared/clock.js'
import { describeError } from '../../shared/errors.js'
import type { AskHost } from './host-ask.js'
import type { RoleService } from './role-service.js'

export const REPORT_RETRY_MS = 1000
export const REPORT_ATTEMPTS_MAX = 30

export interface VmFailure {
  role: string
  op: number
  gone: boolean
  reason: string
}

export interface MigrationOutcome {
  role: string
  to: string
  op: number
  ok: boolean
  reason: string
}

export interface CoordinatorReportsDeps {
  /** This host. */
  name: string
  clock: Clock
  /** The coordinator of this host's current view. */
  coordinator(): string
  ask: AskHost
  log: { warn(o: object, msg: string): void }
}

export class CoordinatorReports {
  /** This host's RoleService, once built (it needs the VmAgent that reports here). */
  private service: RoleService | undefined
  constructor(private readonly deps: CoordinatorReportsDeps) {}

  attach(service: RoleService): void {
    this.service = service
  }

  vmFailed(f: VmFailure): void {
    const { name, log } = this.deps
    const coordinator = this.deps.coordinator()
    if (coordinator === name) return this.service?.vmFailed(name, f.role, f.op, f.gone, f.reason)
    this.deps
      .ask(coordinator, { t: 'vm-failed-report', from: name, ...f }, 'ok')
      .catch((e: unknown) =>
        log.warn({ err: describeError(e), role: f.role }, 'could not report a failed vm to the coordinator; its next inventory finds it'),
      )
  }

  vmMigrated(r: MigrationOutcome): void {
    this.attemptMigrated(r, REPORT_ATTEMPTS_MAX)
  }

  private attemptMigrated(r: MigrationOutcome, left: number): void {
    this.sendMigrated(r).catch((e: unknown) => {
      if (left > 0) return void this.deps.clock.setTimer(REPORT_RETRY_MS, () => this.attemptMigrated(r, left - 1))
      this.deps.log.warn(
        { err: describeError(e), role: r.role },
        'could not report a migration to the coordinator; a new coordinator finds where the vm runs',
      )
    })
  }

  private async sendMigrated(r: MigrationOutcome): Promise<void> {
    const { name } = this.deps
    const coordinator = this.deps.coordinator()
    if (coordinator === name) return this.service?.vmMigrated(name, r.role, r.to, r.op, r.ok, r.reason)
    await this.deps.ask(coordinator, { t: 'vm-migrated-report', from: name, ...r }, 'ok')
  }
}
