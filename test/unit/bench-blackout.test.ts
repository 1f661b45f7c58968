import t from 'tap'
import { formatBlackoutReport, summaryOf, type BlackoutRow } from '../../scripts/bench/blackout.js'

const row = (over: Partial<BlackoutRow> = {}): BlackoutRow => ({
  from: 'host-a1',
  to: 'host-a2',
  outcome: 'completed',
  blackout_ms: 20,
  guest_paused_ms: 18,
  client_blackout_ms: 30,
  switch_gap_ms: 31,
  released_pings: 9,
  precopy_rounds: 3,
  final_pages: 812,
  expected_blackout_ms: 4.5,
  client_move_gap_ms: 33,
  client_gap_ms_max: 33,
  client_gap_ended_ms: 30,
  client_gap_across_hosts: true,
  pings_sent: 1000,
  pings_lost: 0,
  gap_minus_client_blackout_ms: 3,
  gap_minus_blackout_ms: 13,
  phases: {
    last_copy_ms: 10,
    storage_and_resume_ms: 15,
    announced_at_switch_ms: 16,
    source_released_ms: 17,
    first_reply_from_destination_ms: 30,
  },
  ...over,
})

t.test('the summary takes the worst of every migration and says which targets are met', async (t) => {
  const s = summaryOf([row(), row({ client_move_gap_ms: 45, client_gap_ms_max: 60, gap_minus_client_blackout_ms: -12, pings_lost: 1 })])
  t.match(s, {
    client_move_gap_ms_max: 45,
    client_gap_ms_max: 60,
    reported_vs_client_ms_max: 12,
    switch_gap_vs_client_ms_max: 14,
    blackout_ms_vs_client_ms_max: 13,
    pings_lost: 1,
  })
  t.equal(s.gap_met, false, 'a gap over 40 ms, and a ping lost')
  t.equal(s.diff_met, false, '12 ms off')
  const ok = summaryOf([row()])
  t.equal(ok.gap_met, true)
  t.equal(ok.diff_met, true)
  const none = summaryOf([row({ client_blackout_ms: null, gap_minus_client_blackout_ms: null })])
  t.equal(none.reported_vs_client_ms_max, null, 'a migration without the client figure leaves the worst unknown')
  t.equal(none.diff_met, false, 'unknown is not met')
})

t.test('the table has a line per migration and names a longest gap that was not the move', async (t) => {
  const migrations = [row(), row({ from: 'host-a2', to: 'host-a1', client_gap_across_hosts: false, client_gap_ended_ms: -1500 })]
  const text = formatBlackoutReport({
    row: '256 MiB VM dirtying 50 MiB/s, live migration within a site, client pinging every 2 ms',
    vm_mib: 256,
    dirty_mib_s: 50,
    ping_interval_ms: 2,
    migrations,
    summary: summaryOf(migrations),
  })
  t.match(text, /host-a1 → host-a2 +20 +18 +30 │ +33 +33 +0 │ +3 +13 │ +10 +15 +16 +17 +30 │ +3 +812 +4.5/)
  t.match(text, /worst client gap across a move 33 ms \(target ≤ 40: met\)/)
  t.match(text, /host-a2 → host-a1: the client's longest gap was not the move \(it ended -1500 ms from the pause/)
})
