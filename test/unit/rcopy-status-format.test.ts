/**
 * `hvlab rcopy status` as people read it: each side's write-error policy, its synchronous
 * writes waiting (and stuck), a note on a link failure, and one note on what a
 * synchronous acknowledgement means while the partner is unreachable.
 */
import t from 'tap'
import { formatGroups } from '../../scripts/cli/rcopy-status-format.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'

function group(over: Partial<RcGroupStatus> = {}): RcGroupStatus {
  return {
    group: 'rc1',
    partner: 'array-b',
    role: 'primary',
    mode: 'sync',
    started: true,
    link_up: true,
    partner_role: 'secondary',
    bytes_behind: 4096,
    bytes_resynced_total: 0,
    generation: 0,
    volumes: [{ volume: 'vol1', remote_volume: 'vol1', state: 'NotSynced', bytes_behind: 4096 }],
    write_error_policy: 'no_fail_wrt_on_err',
    sync_write_timeout_ms: 5000,
    sync_writes_waiting: 3,
    sync_writes_overdue: 2,
    link_failures_total: 1,
    last_link_failure: {
      code: 'HVLAB_E_TIMEOUT',
      reason: 'array array-b did not acknowledge a synchronous write within 5000 ms',
      at_ms: Date.now() - 2000,
    },
    ...over,
  }
}

t.test('a sync group: policy, stuck writes, the link failure, and what an acknowledgement means', async (t) => {
  const text = formatGroups([{ array: 'array-a', groups: [group()] }])
  t.match(text, /POLICY/)
  t.match(text, /no_fail_wrt_on_err/)
  t.match(text, /3 \(2 stuck\)/, 'waiting writes, and how many are stuck')
  t.match(text, /note: array-a rc1: link failed \d+s ago \(HVLAB_E_TIMEOUT, 1 in all\)/)
  t.match(text, /note: array-a rc1: 2 synchronous writes are stuck past 5000 ms/)
  t.match(
    text,
    /note: sync: a host write is acknowledged once the partner has it on disk\. .*longer than 5000 ms.*no_fail_wrt_on_err \(the default, as on 3PAR\) acknowledges writes on the primary alone and the group shows NotSynced.*fail_wrt_on_err refuses them instead/,
  )
})

t.test('periodic groups only: no note on synchronous acknowledgements', async (t) => {
  const {
    sync_write_timeout_ms: _a,
    sync_writes_waiting: _b,
    sync_writes_overdue: _c,
    last_link_failure: _d,
    ...periodic
  } = group({ mode: 'periodic', period_ms: 1000 })
  const text = formatGroups([{ array: 'array-a', groups: [periodic] }])
  t.notMatch(text, /sync: a host write/)
  t.notMatch(text, /link failed/)
})
