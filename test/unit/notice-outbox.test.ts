/**
 * At-least-once notices to the controller: what a process wrote to a connection that died
 * unread is sent again after it registers anew, from the first number the controller did
 * not take; nothing arrives twice; a restarted process (new pid) starts over; the process
 * keeps only the newest notices.
 */
import t from 'tap'
import { NoticeIntake, NoticeOutbox } from '../../shared/notice-outbox.js'

t.test('notices written to a dead connection are sent again after the next registration, once each', async (t) => {
  const outbox = new NoticeOutbox<{ kind: string }>(100)
  const intake = new NoticeIntake()
  const timeline: string[] = []
  const deliver = (x: { kind: string; n: number }) => {
    if (intake.fresh(x.n)) timeline.push(x.kind)
  }
  t.equal(intake.register(501), 0, 'a new process: nothing taken yet')
  for (const kind of ['a', 'b']) deliver(outbox.add({ kind }))
  // The controller cut the link while the process was paused; on waking it writes two more into the dead socket.
  outbox.add({ kind: 'role.stopped-no-quorum' })
  outbox.add({ kind: 'c' })
  t.same(timeline, ['a', 'b'], 'lost on the dead connection')
  const through = intake.register(501)
  t.equal(through, 2)
  for (const x of outbox.after(through)) deliver(x)
  t.same(timeline, ['a', 'b', 'role.stopped-no-quorum', 'c'], 'sent again, in order')
  for (const x of outbox.after(0)) deliver(x)
  t.same(timeline, ['a', 'b', 'role.stopped-no-quorum', 'c'], 'a notice already taken is dropped')
  t.ok(intake.fresh(undefined), 'an unnumbered notice is always taken')
})

t.test('a restarted process (another pid) starts from nothing; only the newest notices are kept', async (t) => {
  const intake = new NoticeIntake()
  intake.register(1)
  t.ok(intake.fresh(1) && intake.fresh(2))
  t.equal(intake.register(2), 0, 'a new pid')
  t.ok(intake.fresh(1), 'its first notice is new')
  const outbox = new NoticeOutbox<{ i: number }>(3)
  for (let i = 1; i <= 5; i++) outbox.add({ i })
  t.same(
    outbox.after(0).map((x) => x.n),
    [3, 4, 5],
  )
})
