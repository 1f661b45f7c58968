/**
 * The controller checks every event a process sends against its kind's schema: an unknown
 * kind or details that do not fit are refused with their code in the (rate-limited)
 * refusal log, never put on the timeline, and the process stays connected.
 */
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { LabController } from '../../scripts/controller/lab-controller.js'
import { DEFAULT_TOPOLOGY_FILE } from '../../shared/topology.js'
import { connectPeer } from '../../shared/transport/peer-client.js'
import { setRefusalLogRate } from '../../shared/transport/refusal-log.js'

const until = async (done: () => boolean): Promise<void> => {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10))
}

t.test('an event that does not fit its kind is refused and logged; the link and the timeline carry on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hvlab-timeline-intake-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const lines: Record<string, unknown>[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) })
  const controller = await LabController.create({ dir, topologyFile: DEFAULT_TOPOLOGY_FILE, log })
  t.teardown(() => controller.down())
  setRefusalLogRate(1000)
  // Play host-a1: connect to the controller's peer port with the lab's secret.
  const host = await connectPeer({
    endpoint: { host: '127.0.0.1', port: controller.peerPort },
    name: 'host-a1',
    role: 'host',
    secret: controller.secret,
    log: pino({ level: 'silent' }),
  })
  t.teardown(() => host.terminate())
  host.start()
  const event = (kind: string, details: Record<string, string | number | null | string[]>) =>
    host.send({ t: 'event', at_ms: 1, kind, source: 'host-a1', details })
  await event('no.such-kind', {})
  await event('peer.connected', { peer: 7 })
  await event('peer.lost', { peer: 'host-b1', reason: 'x'.repeat(4096), extra: 'y' })
  // Within the wire's bounds (4096 characters) but beyond the kind's (a name is at most 255).
  await event('peer.connected', { peer: 'h'.repeat(300) })
  await event('peer.connected', { peer: 'host-b1' })
  await until(() => controller.timeline.since().some((e) => e.kind === 'peer.connected'))
  const refusals = lines.filter((l) => l.msg === 'refused a timeline event')
  t.same(
    refusals.map((l) => [l.process, l.kind, l.code]),
    [
      ['host-a1', 'no.such-kind', 'unknown-kind'],
      ['host-a1', 'peer.connected', 'bad-details'],
      ['host-a1', 'peer.lost', 'bad-details'],
      ['host-a1', 'peer.connected', 'oversize'],
    ],
    'each refusal logged with its code',
  )
  t.same(
    controller.timeline.since().map((e) => [e.kind, e.source, e.details]),
    [['peer.connected', 'host-a1', { peer: 'host-b1' }]],
    'only the good event is on the timeline',
  )
  t.ok(host.isOpen, 'the process stays connected')
})
