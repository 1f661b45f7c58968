/**
 * The CLX decision table (agent/clx/clx-decision.ts), one row at a time.
 */
import t from 'tap'
import { decideClx, type ArrayView, type ClxDecisionInput } from '../../agent/clx/clx-decision.js'
import type { RcGroupStatus } from '../../shared/protocol/storage-messages.js'

type State = RcGroupStatus['volumes'][number]['state']

function status(role: RcGroupStatus['role'], state: State, o: Partial<RcGroupStatus> = {}): RcGroupStatus {
  return {
    group: 'rc-web1',
    partner: role.startsWith('primary') ? 'array-b' : 'array-a',
    role,
    mode: 'sync',
    started: true,
    link_up: true,
    bytes_behind: 0,
    bytes_resynced_total: 0,
    generation: 0,
    volumes: [{ volume: 'web1-disk0', remote_volume: 'web1-disk0', state, bytes_behind: 0 }],
    ...o,
  }
}
const up = (array: string, s: RcGroupStatus | undefined): ArrayView => ({ array, reachable: true, status: s })
const lost = (array: string): ArrayView => ({ array, reachable: false, error: `array ${array} did not answer` })

/** The VM starts on host-b1 in site-b: local array-b, remote array-a. */
function input(local: ArrayView, remote: ArrayView, force = false, extra: Partial<ClxDecisionInput> = {}): ClxDecisionInput {
  return { vm: 'web1', group: 'rc-web1', host: 'host-b1', host_site: 'site-b', local, remote, force, ...extra }
}

t.test('local copy already writable (Primary / Primary-Rev): none — also a move within the site', async (t) => {
  for (const role of ['primary', 'primary-rev'] as const) {
    const d = decideClx(input(up('array-b', status(role, 'Synced')), up('array-a', status('secondary', 'Synced'))))
    t.equal(d.action, 'none', role)
    if (d.action === 'none') t.equal(d.array, 'array-b')
    // Even with the remote array lost or the group syncing: the local copy is the writable one.
    t.equal(decideClx(input(up('array-b', status(role, 'Syncing')), lost('array-a'))).action, 'none', `${role}, remote lost`)
  }
})

t.test('both arrays healthy and Synced: switchover from Primary, restore from Primary-Rev, run on the remote array', async (t) => {
  const d = decideClx(input(up('array-b', status('secondary', 'Synced')), up('array-a', status('primary', 'Synced'))))
  t.match(d, { action: 'switchover', run_on: 'array-a', verb: 'switchover', local_array: 'array-b' })
  const r = decideClx(input(up('array-b', status('secondary-rev', 'Synced')), up('array-a', status('primary-rev', 'Synced'))))
  t.match(r, { action: 'switchover', run_on: 'array-a', verb: 'restore' })
  // force does not change a planned move
  t.match(decideClx(input(up('array-b', status('secondary', 'Synced')), up('array-a', status('primary', 'Synced')), true)), {
    action: 'switchover',
  })
})

t.test('Syncing: refused, and a force is refused too; the message says how far along', async (t) => {
  for (const force of [false, true]) {
    const d = decideClx(
      input(
        up('array-b', status('secondary', 'Syncing')),
        up('array-a', status('primary', 'Syncing', { bytes_behind: 27 * 1024 })),
        force,
        { group_bytes: 100 * 1024 },
      ),
    )
    t.match(d, { action: 'refuse', reason: 'syncing', forceable: false }, `force=${force}`)
    if (d.action === 'refuse') {
      t.match(d.message, /cannot start vm web1 on host-b1: remote copy group rc-web1 is syncing \(73%/)
      t.match(d.message, /force is refused/)
    }
  }
  // without the group's size: bytes behind only
  const d = decideClx(
    input(up('array-b', status('secondary', 'Syncing')), up('array-a', status('primary', 'Syncing', { bytes_behind: 2048 }))),
  )
  t.match(d, { action: 'refuse', message: /syncing \(2\.0 KiB behind\)/ })
})

t.test(
  'New / NotSynced / Stopped / arrays split (primary reachable): refused unless forced; forced → failover on the local array',
  async (t) => {
    const rows: [string, RcGroupStatus, string][] = [
      ['new', status('primary', 'New'), 'new'],
      ['not synced (periodic, bytes behind)', status('primary', 'Synced', { bytes_behind: 4096, mode: 'periodic' }), 'not-synced'],
      ['stopped', status('primary', 'Stopped', { started: false }), 'stopped'],
      ['arrays split', status('primary', 'NotSynced', { link_up: false, bytes_behind: 8192 }), 'arrays-split'],
      ['no volumes', status('primary', 'Synced', { volumes: [] }), 'new'],
    ]
    for (const [name, remote, reason] of rows) {
      const local = up(
        'array-b',
        status('secondary', remote.link_up ? 'Synced' : 'NotSynced', { link_up: remote.link_up, started: remote.started }),
      )
      const d = decideClx(input(local, up('array-a', remote)))
      t.match(d, { action: 'refuse', reason, forceable: true }, name)
      if (d.action === 'refuse') t.match(d.message, /^cannot start vm web1 on host-b1: remote copy group rc-web1 .*or force/, name)
      const f = decideClx(input(local, up('array-a', remote), true))
      t.match(f, { action: 'failover', run_on: 'array-b', force: true }, `${name}, forced`)
      if (f.action === 'failover') {
        // The group must be stopped on the primary first while it still replicates to us.
        t.equal(f.stop_first_on, remote.started && remote.link_up ? 'array-a' : undefined, `${name}: stop first?`)
      }
    }
  },
)

t.test('primary site array lost, local secondary consistent (NotSynced): failover, no force needed', async (t) => {
  const d = decideClx(input(up('array-b', status('secondary', 'NotSynced', { link_up: false })), lost('array-a')))
  t.match(d, { action: 'failover', run_on: 'array-b', force: false })
  t.equal(d.action === 'failover' ? d.stop_first_on : 'x', undefined)
  // From Secondary-Rev too (the group had been reversed).
  t.match(decideClx(input(up('array-b', status('secondary-rev', 'NotSynced', { link_up: false })), lost('array-a'))), {
    action: 'failover',
    force: false,
  })
})

t.test('primary lost with a local copy that is New / Stale / Stopped: refused unless forced', async (t) => {
  for (const [state, reason] of [
    ['New', 'new'],
    ['Stale', 'stale'],
    ['Stopped', 'stopped'],
  ] as const) {
    const local = up('array-b', status('secondary', state, { link_up: false }))
    t.match(
      decideClx(input(local, lost('array-a'))),
      { action: 'refuse', reason, forceable: true, message: /array array-a is lost.*force/ },
      state,
    )
    t.match(decideClx(input(local, lost('array-a'), true)), { action: 'failover', run_on: 'array-b', force: true }, `${state}, forced`)
  }
})

t.test('primary lost while the local secondary is still Syncing: refused, force refused', async (t) => {
  for (const force of [false, true]) {
    t.match(decideClx(input(up('array-b', status('secondary', 'Syncing', { link_up: false })), lost('array-a'), force)), {
      action: 'refuse',
      reason: 'syncing',
      forceable: false,
    })
  }
})

t.test('the host cannot reach the primary array but the arrays are still linked: refused, not forceable', async (t) => {
  for (const force of [false, true]) {
    const d = decideClx(input(up('array-b', status('secondary', 'Synced')), lost('array-a'), force))
    t.match(d, { action: 'refuse', reason: 'primary-linked', forceable: false, message: /still linked/ })
  }
})

t.test('local array unreachable or without the group; remote without the group; no source anywhere: refused', async (t) => {
  for (const force of [false, true]) {
    t.match(decideClx(input(lost('array-b'), up('array-a', status('primary', 'Synced')), force)), {
      action: 'refuse',
      reason: 'local-array-unreachable',
      forceable: false,
    })
    t.match(decideClx(input(up('array-b', undefined), up('array-a', status('primary', 'Synced')), force)), {
      action: 'refuse',
      reason: 'group-unknown',
    })
    t.match(decideClx(input(up('array-b', status('secondary', 'Synced')), up('array-a', undefined), force)), {
      action: 'refuse',
      reason: 'group-unknown',
    })
    t.match(decideClx(input(up('array-b', status('secondary', 'Synced')), up('array-a', status('secondary-rev', 'Synced')), force)), {
      action: 'refuse',
      reason: 'no-source',
      forceable: false,
    })
  }
})

t.test(
  'sync mode: a write in flight to the partner (bytes behind, volumes Synced) does not block a switchover; periodic mode: it does',
  async (t) => {
    const inFlight = { bytes_behind: 4096 }
    t.match(decideClx(input(up('array-b', status('secondary', 'Synced')), up('array-a', status('primary', 'Synced', inFlight)))), {
      action: 'switchover',
    })
    t.match(
      decideClx(
        input(
          up('array-b', status('secondary', 'Synced', { mode: 'periodic' })),
          up('array-a', status('primary', 'Synced', { ...inFlight, mode: 'periodic' })),
        ),
      ),
      { action: 'refuse', reason: 'not-synced' },
    )
  },
)
