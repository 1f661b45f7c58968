import t from 'tap'
import { ManualClock } from '../../shared/clock.js'
import { HvlabError } from '../../shared/errors.js'
import type { GuestPing, GuestReply } from '../../shared/protocol/guest-messages.js'
import type { SwitchReply } from '../../shared/protocol/guest-messages.js'
import { VirtualSwitch, type SwitchMove } from '../../scripts/controller/virtual-switch.js'

/** Hosts as the switch sees them: each answers from its own VM set; `held` pings wait for a manual answer. */
const setup = (
  opts: {
    hold_ms?: number
    inflight_per_host_max?: number
    queue_per_host_max?: number
    pending_per_client_max?: number
    onMoved?: (m: SwitchMove) => void
  } = {},
) => {
  const clock = new ManualClock(0)
  const runs = new Map<string, Set<string>>([
    ['host-a1', new Set()],
    ['host-a2', new Set()],
  ])
  const counters = new Map<string, number>()
  const hold = new Set<string>()
  const held: { host: string; ping: GuestPing; answer: () => void }[] = []
  const forwarded: string[] = []
  const answer = (host: string, ping: GuestPing): GuestReply => {
    if (!runs.get(host)?.has(ping.vm)) return { t: 'guest-unavailable', vm: ping.vm, seq: ping.seq, host, reason: 'not-here' }
    const v = (counters.get(ping.vm) ?? 0) + 1
    counters.set(ping.vm, v)
    return { t: 'guest-pong', vm: ping.vm, seq: ping.seq, value: v, host }
  }
  const sw = new VirtualSwitch({
    clock,
    ...opts,
    forward: (host, ping) => {
      forwarded.push(`${ping.seq}@${host}`)
      if (host === 'host-slow') return Promise.reject(new HvlabError('HVLAB_E_TIMEOUT', `${host} did not answer guest-ping within 8000 ms`))
      if (!runs.has(host)) return Promise.reject(new HvlabError('HVLAB_E_CLOSED', `${host} is not connected`))
      if (hold.has(host)) return new Promise((resolve) => held.push({ host, ping, answer: () => resolve(answer(host, ping)) }))
      return Promise.resolve(answer(host, ping))
    },
  })
  const replies: SwitchReply[] = []
  const ping = (seq: number, vm = 'web1', client = 'c1') => sw.ping(client, { t: 'ping', vm, seq }, (r) => replies.push(r))
  const settle = () => new Promise((r) => setImmediate(r))
  return { clock, runs, hold, held, sw, replies, ping, settle, forwarded }
}
/** A host's vm-location: the VM runs on the sender now as start `op`, or stopped there. */
const here = (vm: string, op: number) => ({ vm, at: 'here' as const, op, epoch: 1 })
const gone = (vm: string, op: number) => ({ vm, at: 'gone' as const, op, epoch: 1 })

t.test('learns locations only from the sending host, and routes pings there', async (t) => {
  const { sw, runs, replies, ping, settle } = setup()
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  t.equal(sw.where('web1'), 'host-a1')
  // The host is the sending link, never a name in the message; an older incarnation announced late changes nothing.
  sw.located('host-a2', here('web1', 0))
  t.equal(sw.where('web1'), 'host-a1', 'a host cannot announce a VM for another host')
  sw.located('host-a2', gone('web1', 1))
  t.equal(sw.where('web1'), 'host-a1', 'a host cannot withdraw a VM that runs elsewhere')
  ping(0)
  ping(1)
  await settle()
  t.same(replies, [
    { t: 'pong', vm: 'web1', seq: 0, value: 1, host: 'host-a1' },
    { t: 'pong', vm: 'web1', seq: 1, value: 2, host: 'host-a1' },
  ])
  sw.located('host-a1', gone('web1', 1)) // stopped for lost quorum
  t.equal(sw.where('web1'), undefined, 'stopped for lost quorum: withdrawn')
})

t.test('an unknown address is answered at once, not left hanging', async (t) => {
  const { replies, ping, forwarded } = setup()
  ping(0, 'nosuch')
  t.equal(replies.length, 1)
  t.match(replies[0], { t: 'unreachable', vm: 'nosuch', seq: 0, reason: /no such address/ })
  t.same(forwarded, [], 'nothing was sent to any host')
})

t.test('pings held during a blackout follow the VM to its new host: none lost', async (t) => {
  const { sw, runs, hold, held, replies, ping, settle } = setup()
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  ping(0)
  await settle()
  // blackout: the source holds pings
  hold.add('host-a1')
  ping(1)
  ping(2)
  await settle()
  t.equal(held.length, 2)
  // the VM resumes on host-a2; the source releases it and answers its held pings not-here
  runs.get('host-a2')!.add('web1')
  runs.get('host-a1')!.delete('web1')
  hold.delete('host-a1')
  // the not-here replies overtake the announcement: the switch waits for it
  for (const h of held.splice(0)) h.answer()
  await settle()
  t.equal(replies.length, 1, 'pings 1 and 2 wait for the announcement')
  t.equal(sw.status().waiting, 2)
  sw.located('host-a2', here('web1', 2)) // the destination's gratuitous ARP; the source's departure sends nothing
  ping(3)
  await settle()
  t.same(
    replies.map((r) => [r.t, r.seq, r.t === 'pong' ? r.host : '']).sort((a, b) => Number(a[1]) - Number(b[1])),
    [
      ['pong', 0, 'host-a1'],
      ['pong', 1, 'host-a2'],
      ['pong', 2, 'host-a2'],
      ['pong', 3, 'host-a2'],
    ],
  )
  t.equal(sw.where('web1'), 'host-a2', 'a departure does not withdraw the new location')
})

t.test('a not-here after the announcement goes straight to the new host', async (t) => {
  const { sw, runs, replies, ping, settle, forwarded } = setup()
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a2')!.add('web1') // already moved, table not yet updated
  ping(0)
  sw.located('host-a2', here('web1', 2))
  await settle()
  t.same(forwarded, ['0@host-a1', '0@host-a2'])
  t.match(replies, [{ t: 'pong', seq: 0, host: 'host-a2' }])
})

t.test('waiting for an announcement is bounded in time', async (t) => {
  const { sw, runs, replies, ping, settle, clock } = setup({ hold_ms: 500 })
  sw.located('host-a1', here('web1', 1))
  ping(0) // host-a1 does not run it: not-here, no announcement follows
  await settle()
  t.equal(replies.length, 0)
  clock.advance(499)
  t.equal(replies.length, 0, 'still waiting just before the bound')
  clock.advance(1)
  t.match(replies, [{ t: 'unreachable', seq: 0, reason: /no host announced it within 500 ms/ }])
  t.equal(sw.status().waiting, 0)
  void runs
})

t.test('a host that does not answer in time, and a host that exits', async (t) => {
  const { sw, replies, ping, settle, clock } = setup({ hold_ms: 300 })
  sw.located('host-slow', here('web1', 1))
  ping(0)
  await settle()
  t.match(replies, [{ t: 'unreachable', seq: 0, reason: /host-slow did not answer: .*within 8000 ms/ }])
  sw.located('host-zz', here('web1', 1))
  ping(1)
  await settle()
  sw.forgetHost('host-zz')
  t.equal(sw.where('web1'), undefined, 'a host that exited runs nothing')
  clock.advance(300)
  t.match(replies[1], { t: 'unreachable', seq: 1, reason: /within 300 ms/ }, 'its waiting ping is given up after the hold')
})

t.test('bounds: beyond the in-flight limit per host pings queue, beyond the queue they are refused', async (t) => {
  const { sw, runs, hold, held, replies, ping, settle } = setup({ inflight_per_host_max: 2, queue_per_host_max: 1 })
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  hold.add('host-a1')
  for (let s = 0; s < 4; s++) ping(s)
  t.equal(held.length, 2, 'two in flight')
  t.equal(sw.status().queued, 1, 'one queued')
  t.match(replies, [{ t: 'unreachable', seq: 3, reason: /1 more are queued/ }], 'the fourth is refused')
  held.shift()!.answer()
  await settle()
  t.equal(held.length, 2, 'the queued ping went out when a slot freed')
  t.equal(sw.status().queued, 0)
  for (const h of held.splice(0)) h.answer()
  await settle()
  t.same(
    replies.filter((r) => r.t === 'pong').map((r) => r.seq),
    [0, 1, 2],
  )
  t.equal(sw.status().inflight, 0, 'slots freed as replies came back')
})

t.test('a ping whose host link dropped is sent again when the link is back', async (t) => {
  const { sw, runs, replies, ping, settle, forwarded, clock } = setup({ hold_ms: 1000 })
  sw.located('host-a3', here('web1', 1)) // host-a3's link is down: forward rejects with HVLAB_E_CLOSED
  ping(0)
  await settle()
  t.equal(replies.length, 0, 'not given up at once')
  t.equal(sw.status().waiting, 1)
  runs.set('host-a3', new Set(['web1']))
  sw.hostUp('host-a3')
  await settle()
  t.same(forwarded, ['0@host-a3', '0@host-a3'])
  t.match(replies, [{ t: 'pong', seq: 0, host: 'host-a3' }])
  // and without the link coming back: bounded
  runs.delete('host-a3')
  ping(1)
  await settle()
  clock.advance(1000)
  t.match(replies[1], { t: 'unreachable', seq: 1 })
})

t.test('bounds: outstanding pings per client', async (t) => {
  const { sw, runs, hold, held, replies, ping, settle } = setup({ pending_per_client_max: 2 })
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  hold.add('host-a1')
  ping(0)
  ping(1)
  ping(2)
  ping(3, 'web1', 'c2')
  t.match(replies, [{ t: 'unreachable', seq: 2, reason: /still outstanding/ }], 'a client with 2 outstanding must wait')
  t.equal(held.length, 3, 'another client is not held back')
  for (const h of held.splice(0)) h.answer()
  await settle()
  ping(4)
  t.equal(held.length, 1, 'the client may send again once answered')
})

t.test(
  'incarnations: a late announcement of an older one elsewhere is ignored; a newer one, or the same host again, moves the route',
  async (t) => {
    const { sw } = setup()
    sw.located('host-a1', here('web1', 5))
    sw.located('host-a2', here('web1', 3)) // e.g. queued on host-a2's link while it was down, sent on reconnect
    t.equal(sw.where('web1'), 'host-a1', 'the older incarnation does not take the route')
    sw.located('host-a2', gone('web1', 3))
    t.equal(sw.where('web1'), 'host-a1', 'nor does its stop withdraw it')
    sw.located('host-a2', here('web1', 7)) // migrated or failed over: a newer op
    t.equal(sw.where('web1'), 'host-a2')
    sw.located('host-a2', here('web1', 7))
    t.equal(sw.where('web1'), 'host-a2', 'announced again: unchanged')
    sw.located('host-a2', gone('web1', 7))
    t.equal(sw.where('web1'), undefined, 'stopped where it ran: withdrawn')
    sw.located('host-a1', here('web1', 2))
    t.equal(sw.where('web1'), 'host-a1', 'with nothing in the table, any announcement is taken')
  },
)

t.test('at the announcement, pings the paused source holds go to the new host at once; its late answers are dropped', async (t) => {
  const moves: SwitchMove[] = []
  const { sw, runs, hold, held, replies, ping, settle, forwarded, clock } = setup({ onMoved: (m) => moves.push(m) })
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  ping(0)
  await settle()
  clock.advance(2)
  // blackout: the paused source holds pings 1 and 2
  hold.add('host-a1')
  ping(1)
  ping(2)
  await settle()
  t.equal(held.length, 2)
  clock.advance(20)
  // the VM resumes on host-a2, which announces it; the source has not let it go yet
  runs.get('host-a2')!.add('web1')
  sw.located('host-a2', here('web1', 2))
  await settle()
  t.same(forwarded, ['0@host-a1', '1@host-a1', '2@host-a1', '1@host-a2', '2@host-a2'], 'sent on at once, not after the source answers')
  t.same(
    replies.map((r) => [r.seq, r.t === 'pong' ? r.host : r.t]),
    [
      [0, 'host-a1'],
      [1, 'host-a2'],
      [2, 'host-a2'],
    ],
  )
  // the source lets the VM go, and answers its held pings not-here: nothing more reaches the client
  runs.get('host-a1')!.delete('web1')
  for (const h of held.splice(0)) h.answer()
  await settle()
  t.equal(replies.length, 3, 'one reply per ping')
  t.equal(sw.status().inflight, 0, "the source's late answers freed its slots")
  t.equal(moves.length, 1, 'the move is reported once')
  t.match(moves[0], {
    vm: 'web1',
    from: 'host-a1',
    to: 'host-a2',
    last_reply_at_ms: 0,
    first_reply_at_ms: 22,
    gap_ms: 22,
    released_pings: 2,
  })
  t.equal(moves[0]!.announced_at_ms, 22)
})

t.test('a guest that answered a ping the switch had already sent on counts once', async (t) => {
  const { sw, runs, hold, held, replies, ping, settle } = setup()
  sw.located('host-a1', here('web1', 1))
  runs.get('host-a1')!.add('web1')
  hold.add('host-a1')
  ping(0)
  await settle()
  // a newer incarnation elsewhere (a failover): the ping goes there; the old host still answers it later
  runs.get('host-a2')!.add('web1')
  sw.located('host-a2', here('web1', 2))
  await settle()
  for (const h of held.splice(0)) h.answer()
  await settle()
  t.same(
    replies.map((r) => [r.seq, r.t === 'pong' ? r.host : r.t]),
    [[0, 'host-a2']],
    "the client gets the new host's reply only",
  )
})
