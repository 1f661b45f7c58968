import t from 'tap'
import { awaitClientBlackout, clientBlackoutOf, NO_CLIENT } from '../../scripts/cli/client-blackout.js'
import type { SeenEvent } from '../../scripts/cli/timeline-cursor.js'
import type { MigrationResultMessage } from '../../shared/protocol/cluster-messages.js'

const result = (over: Partial<MigrationResultMessage> = {}): MigrationResultMessage =>
  ({ vm: 'web1', source: 'host-a1', destination: 'host-a2', outcome: 'completed', paused_at_ms: 1000, ...over }) as MigrationResultMessage
const moved = (seq: number, details: Record<string, unknown>): SeenEvent => ({
  seq,
  kind: 'switch.vm-moved',
  source: 'lab',
  details: { vm: 'web1', from: 'host-a1', to: 'host-a2', first_reply_at_ms: 1030, gap_ms: 33, released_pings: 7, ...details },
})

t.test("the switch's move of the VM to its destination after the pause gives the client's blackout", async (t) => {
  const events = [
    moved(1, { first_reply_at_ms: 900 }), // an earlier move, before this pause
    moved(2, { vm: 'db1' }),
    moved(3, { to: 'host-b1' }),
    moved(4, {}),
  ]
  t.same(clientBlackoutOf(result(), events), { client_blackout_ms: 30, client_gap_ms: 33, released_pings: 7 })
  t.equal(clientBlackoutOf(result(), events.slice(0, 3)), null, 'none of the others counts')
  t.equal(clientBlackoutOf(result({ outcome: 'failed' }), events), null, 'a migration that did not complete has none')
  t.equal(clientBlackoutOf(result({ paused_at_ms: null }), events), null, 'nor one whose pause is unknown')
})

t.test('no client pinged the VM: null figures after a short wait', async (t) => {
  let polls = 0
  const c = await awaitClientBlackout(result(), async () => (polls++, []), 60)
  t.same(c, NO_CLIENT)
  t.ok(polls >= 2, 'it looked more than once')
  let found = 0
  const later = await awaitClientBlackout(result(), async () => (found++ === 0 ? [] : [moved(9, {})]), 5_000)
  t.equal(later.client_blackout_ms, 30, 'an event that comes on a later poll is found')
  t.same(await awaitClientBlackout(result({ outcome: 'cancelled' }), async () => t.fail('no poll') as never), NO_CLIENT)
})
