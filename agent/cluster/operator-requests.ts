/**
 * An operator's role requests on any host: a role command, a migration, the role list.
 * Each runs where the roles run (operator-wait.ts): here on the coordinator, else
 * forwarded to it once. The role list falls back to the last committed records this
 * host has when no coordinator answers.
 */
import type { MigrationOptionsMessage, RoleCommandMessage, VmRoleRecord } from '../../shared/protocol/cluster-messages.js'
import type { Message } from '../../shared/protocol/messages.js'
import type { AskHost } from './host-ask.js'
import { onCoordinator, type OperatorWaitDeps } from './operator-wait.js'
import { decodeRoles } from './role-record.js'
import { CREATE_REQUEST_TIMEOUT_MS, ROLE_REQUEST_TIMEOUT_MS } from './role-request-timeouts.js'
import type { RoleService } from './role-service.js'

export interface OperatorRequestsDeps {
  wait: OperatorWaitDeps
  ask: AskHost
  roles: Pick<RoleService, 'command' | 'list'> & Partial<Pick<RoleService, 'listExtras'>>
  /** Runs a role command on this host, the coordinator (coordinator-commands.ts). */
  runCommand(command: RoleCommandMessage): Promise<void>
  /** The last committed cluster database this host has. */
  database(): { readonly config: Readonly<Record<string, string>> }
}

export interface MigrateQuery {
  name: string
  to: string
  options: MigrationOptionsMessage
}

export class OperatorRequests {
  constructor(private readonly deps: OperatorRequestsDeps) {}

  async command(command: RoleCommandMessage, forwarded: boolean): Promise<Message> {
    const timeout_ms = command.op === 'create' ? CREATE_REQUEST_TIMEOUT_MS : ROLE_REQUEST_TIMEOUT_MS
    await onCoordinator(
      this.deps.wait,
      () => this.deps.runCommand(command),
      async (coordinator) => {
        await this.deps.ask(coordinator, { t: 'role-command-request', command, forwarded: true }, 'ok', timeout_ms)
      },
      forwarded,
    )
    return { t: 'ok' }
  }

  async migrate(q: MigrateQuery, forwarded: boolean): Promise<Message> {
    await onCoordinator(
      this.deps.wait,
      () => this.deps.roles.command({ op: 'migrate', name: q.name, to: q.to, options: q.options }),
      async (coordinator) => {
        await this.deps.ask(coordinator, { t: 'vm-migrate-command-request', ...q, forwarded: true }, 'ok')
      },
      forwarded,
    )
    return { t: 'ok' }
  }

  async list(forwarded: boolean): Promise<Message> {
    const { wait, ask, roles } = this.deps
    try {
      return await onCoordinator(
        wait,
        () => ({
          t: 'role-list-reply' as const,
          coordinator: wait.name,
          source: 'coordinator' as const,
          roles: (roles.list() ?? []) as VmRoleRecord[],
          ...(roles.listExtras?.() ?? {}),
        }),
        (coordinator) => ask(coordinator, { t: 'role-list-request', forwarded: true }, 'role-list-reply'),
        forwarded,
      )
    } catch (e) {
      if (forwarded) throw e
      // No coordinator answers: show the last committed records this host has.
      return {
        t: 'role-list-reply',
        coordinator: wait.view().coordinator,
        source: 'database',
        roles: decodeRoles(this.deps.database().config).roles as VmRoleRecord[],
      }
    }
  }
}
