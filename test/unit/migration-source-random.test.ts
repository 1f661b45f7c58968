/**
 * Seeded random scripts against the source state machine: a fake shell answers every
 * effect with plausible inputs (dirty counts, rates, storage answers), and failures or
 * cancels are injected at random points. After each run the way-back invariants must
 * hold. A failing run prints its seed and the command that reruns it (HVLAB_SEED=<seed>;
 * see test/sim/seed.ts).
 */
import t from 'tap'
import { mulberry32 } from '../../shared/seeded-random.js'
import { forEachSeed, seeds } from '../sim/seed.js'
import { MigrationSource, type SourceEffect, type SourceInput } from '../../agent/migration/migration-source.js'

const PAGE = 4096

interface World {
  paused: boolean
  throttle_pct: number
  storage_moved: boolean
  released: number
  aborted: number
  destination_running: boolean
}

/** Runs one random migration; returns how it ended and the broken invariant, if any. */
function runOnce(seed: number): { outcome: string; broken: string | null } {
  const m = { outcome: 'none' }
  const broken = checkRun(seed, m)
  return { outcome: m.outcome, broken }
}

function checkRun(seed: number, out: { outcome: string }): string | null {
  const random = mulberry32(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T
  const page_count = 1 + Math.floor(random() * 100_000)
  const round_cap = 1 + Math.floor(random() * 12)
  const m = new MigrationSource({
    migration_id: 'm-r',
    vm: 'vm1',
    destination: 'host-b',
    page_count,
    storage: pick(['csv', 'owned', 'clx'] as const),
    verify: random() < 0.3,
    downtime_budget_ms: 1 + random() * 300,
    round_cap,
  })
  const world: World = { paused: false, throttle_pct: 0, storage_moved: false, released: 0, aborted: 0, destination_running: false }
  const pending: SourceInput[] = []
  let now = 0
  const apply = (effects: SourceEffect[]): void => {
    for (const e of effects) {
      switch (e.kind) {
        case 'send-begin':
          pending.push(random() < 0.05 ? { kind: 'failed', reason: 'refused' } : { kind: 'destination-ready' })
          break
        case 'copy-round': {
          const pages = e.pages === 'all' ? page_count : Math.floor(random() * page_count)
          pending.push({
            kind: 'round-sent',
            round: e.round,
            pages,
            bytes_sent: Math.floor(pages * PAGE * random()),
            dirty_pages_now: Math.floor(random() * page_count * random()),
          })
          break
        }
        case 'copy-final':
          if (!world.paused) throw new Error('copy-final with the guest running')
          pending.push({ kind: 'final-sent', round: e.round, pages: Math.floor(random() * 100), bytes_sent: 1000, batches: 1 })
          break
        case 'hand-over-storage':
          if (random() < 0.2) pending.push({ kind: 'storage-refused', reason: 'not in sync' })
          else {
            world.storage_moved = true
            pending.push({ kind: 'storage-handed-over' })
          }
          break
        case 'hand-back-storage':
          world.storage_moved = false
          break
        case 'resume-destination':
          if (random() < 0.9) {
            world.destination_running = true
            pending.push({ kind: 'destination-running', host: 'host-b' })
          }
          break
        case 'throttle-guest':
          world.throttle_pct = e.pct
          break
        case 'pause-guest':
          world.paused = true
          break
        case 'resume-guest':
          world.paused = false
          break
        case 'abort-destination':
          world.aborted++
          break
        case 'release-vm':
          world.released++
          break
        case 'emit':
          break
      }
    }
  }
  apply(m.step({ kind: 'start' }, now))
  for (let steps = 0; steps < 1000 && !m.done; steps++) {
    now += Math.floor(random() * 500)
    // Inject a fault now and then, at any point (even while an answer is pending).
    const r = random()
    if (r < 0.04) apply(m.step({ kind: 'failed', reason: 'link cut' }, now))
    else if (r < 0.07) apply(m.step({ kind: 'cancel', reason: 'operator' }, now))
    else {
      const next = pending.shift()
      if (!next) {
        // the destination never answered resume: the link goes
        apply(m.step({ kind: 'failed', reason: 'timeout' }, now))
        continue
      }
      apply(m.step(next, now))
    }
  }
  if (!m.done) return 'did not end within 1000 steps'
  out.outcome = m.outcome ?? 'none'
  const rounds = m.report().rounds.length
  if (rounds > round_cap) return `ran ${rounds} rounds over the cap of ${round_cap}`
  switch (m.outcome) {
    case 'completed':
      if (world.released !== 1) return `completed but released ${world.released} times`
      if (!world.destination_running) return 'completed without the destination running'
      return null
    case 'failed':
    case 'cancelled':
      if (world.released !== 0) return `${m.outcome} but the source VM was released`
      if (world.paused) return `${m.outcome} with the guest left paused`
      if (world.throttle_pct !== 0) return `${m.outcome} with the guest left throttled at ${world.throttle_pct}%`
      if (world.storage_moved) return `${m.outcome} with storage left on the destination`
      if (world.aborted !== 1) return `${m.outcome} but the destination was told to abort ${world.aborted} times`
      return null
    case 'in_doubt':
      if (world.released !== 0) return 'in doubt but released'
      if (!world.paused) return 'in doubt with the source guest running (two copies could run)'
      return null
    default:
      return `ended with outcome ${m.outcome}`
  }
}

const SEEDS = seeds(import.meta.url, { base: 1, count: 3000 })

t.test('the way back holds over seeded random fault schedules', async (t) => {
  const outcomes = new Map<string, number>()
  const { runs, failures } = await forEachSeed(t, SEEDS, (seed) => {
    const run = runOnce(seed)
    outcomes.set(run.outcome, (outcomes.get(run.outcome) ?? 0) + 1)
    return run.broken
  })
  t.equal(failures, 0, `${runs} schedules kept the invariants: ${JSON.stringify(Object.fromEntries(outcomes))}`)
  if (!SEEDS.fromEnv) {
    // The schedules must reach every ending, or the test proves little.
    for (const outcome of ['completed', 'failed', 'cancelled', 'in_doubt']) t.ok((outcomes.get(outcome) ?? 0) > 10, `${outcome} is reached`)
  }
})
