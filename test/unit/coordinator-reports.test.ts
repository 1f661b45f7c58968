/**
 * A host's reports to the coordinator (agent/cluster/coordinator-reports.ts) on a
 * ManualClock: a migration's outcome is retried every REPORT_RETRY_MS through a view
 * change, REPORT_ATTEMPTS_MAX times, then logged; a failed VM is reported once; a report
 * to this host itself goes straight to its RoleService.
 */
import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { Message } from '../../shared/protocol/messages.js'
import { CoordinatorReports, REPORT_ATTEMPTS_MAX, REPORT_RETRY_MS } from '../../agent/cluster/coordinator-reports.js'
import type { AskHost } from '../../agent/cluster/host-ask.js'
import type { RoleService } from '../../agent/cluster/role-service.js'

const OUTCOME = { role: 'web1', to: 'host-a2', op: 7, ok: true, reason: 'migrated' }
const settle = (): Promise<void> => new Promise((r) => setImmediate(r))

/** host-a1 reporting to `coordinator`, whose answers `answer` decides. */
function host(clock: ManualClock, answer: (n: number) => boolean) {
  const state = { coordinator: 'host-b1' }
  const asked: { at_ms: number; node: string; message: Message }[] = []
  const warned: string[] = []
  const ask = (async (node: string, message: Message) => {
    asked.push({ at_ms: clock.now(), node, message })
    if (!answer(asked.length)) throw new HvlabError('HVLAB_E_CLOSED', `host-a1 has no connection to ${node} now`)
    return { t: 'ok' }
  }) as AskHost
  const log = { warn: (_o: object, msg: string) => void warned.push(msg) }
  const reports = new CoordinatorReports({ name: 'host-a1', clock, coordinator: () => state.coordinator, ask, log })
  return { state, asked, warned, reports }
}

t.test('a migration report is retried on the clock until the coordinator takes it', async (t) => {
  const clock = new ManualClock(0)
  const { asked, warned, reports } = host(clock, (n) => n >= 3)
  reports.vmMigrated(OUTCOME)
  await settle()
  t.equal(asked.length, 1, 'sent at once')
  clock.advance(REPORT_RETRY_MS - 1)
  await settle()
  t.equal(asked.length, 1, 'not again before REPORT_RETRY_MS')
  clock.advance(1)
  await settle()
  clock.advance(REPORT_RETRY_MS)
  await settle()
  t.same(
    asked.map((a) => a.at_ms),
    [0, REPORT_RETRY_MS, 2 * REPORT_RETRY_MS],
  )
  t.same(asked[2]!.message, { t: 'vm-migrated-report', from: 'host-a1', ...OUTCOME })
  t.equal(clock.pendingTimers(), 0, 'no retry after it got through')
  t.same(warned, [])
})

t.test('a migration report gives up after REPORT_ATTEMPTS_MAX retries and says so', async (t) => {
  const clock = new ManualClock(0)
  const { asked, warned, reports } = host(clock, () => false)
  reports.vmMigrated(OUTCOME)
  for (let i = 0; i <= REPORT_ATTEMPTS_MAX; i++) {
    await settle()
    clock.advance(REPORT_RETRY_MS)
  }
  await settle()
  t.equal(asked.length, REPORT_ATTEMPTS_MAX + 1)
  t.same(warned, ['could not report a migration to the coordinator; a new coordinator finds where the vm runs'])
  t.equal(clock.pendingTimers(), 0)
})

t.test('a report to this host itself goes to its RoleService; a failed vm is reported once', async (t) => {
  const clock = new ManualClock(0)
  const { state, asked, warned, reports } = host(clock, () => false)
  const calls: unknown[][] = []
  const service = {
    vmMigrated: (...a: unknown[]) => void calls.push(['vmMigrated', ...a]),
    vmFailed: (...a: unknown[]) => void calls.push(['vmFailed', ...a]),
  }
  reports.attach(service as unknown as RoleService)
  reports.vmFailed({ role: 'web1', op: 3, gone: true, reason: 'crashed' })
  await settle()
  clock.advance(REPORT_RETRY_MS * 5)
  await settle()
  t.equal(asked.length, 1, 'a failure report is not retried')
  t.same(warned, ['could not report a failed vm to the coordinator; its next inventory finds it'])
  state.coordinator = 'host-a1'
  reports.vmMigrated(OUTCOME)
  reports.vmFailed({ role: 'web1', op: 3, gone: true, reason: 'crashed' })
  await settle()
  t.same(calls, [
    ['vmMigrated', 'host-a1', 'web1', 'host-a2', 7, true, 'migrated'],
    ['vmFailed', 'host-a1', 'web1', 3, true, 'crashed'],
  ])
  t.equal(asked.length, 1)
})
