import t from 'tap'
import { chooseCoordinator, coordinatorCandidates, coordinatorMoves } from '../../agent/csv/coordinator-choice.js'
import { initialPathState, stepPathState } from '../../agent/csv/csv-path-state.js'
import { decodeCsvs, encodeCsv, encodeRegion, csvKey, regionKey, type RegionRecord } from '../../agent/csv/csv-record.js'
import { allocateBlocks, layoutProblems, volumeBlock } from '../../agent/csv/region-allocation.js'
import { isHvlabError } from '../../shared/errors.js'
import { mulberry32 } from '../../shared/seeded-random.js'
import { forEachSeed, seeds } from '../sim/seed.js'

const sites: Record<string, string> = { 'host-a1': 'site-a', 'host-a2': 'site-a', 'host-b1': 'site-b', 'host-b2': 'site-b' }
const siteOf = (n: string): string | undefined => sites[n]

t.test('coordinator choice: keeps a member, else the next member in the array site, deterministic', async (t) => {
  const all = ['host-a1', 'host-a2', 'host-b1', 'host-b2']
  t.equal(chooseCoordinator('host-b1', 'site-a', all, siteOf), 'host-b1', 'a member keeps it (no needless move)')
  t.equal(chooseCoordinator('host-a1', 'site-a', ['host-a2', 'host-b1', 'host-b2'], siteOf), 'host-a2', 'same-site survivor first')
  t.equal(chooseCoordinator('host-a2', 'site-a', ['host-b2', 'host-b1', 'host-a1'], siteOf), 'host-a1', 'wraps around in the site')
  t.equal(chooseCoordinator('host-a1', 'site-a', ['host-b2', 'host-b1'], siteOf), 'host-b1', 'no one in the site: next by name')
  t.equal(chooseCoordinator('host-b2', null, ['host-a1', 'host-a2'], siteOf), 'host-a1', 'wraps past the end')
  t.equal(chooseCoordinator('host-a1', 'site-a', [], siteOf), null, 'no members, no choice')
  const moves = coordinatorMoves(
    [
      { name: 'v2', owner: 'host-a1', array_site: 'site-b' },
      { name: 'v1', owner: 'host-a1', array_site: 'site-a' },
      { name: 'v3', owner: 'host-b1', array_site: 'site-a' },
    ],
    ['host-b1', 'host-a2', 'host-b2'],
    siteOf,
  )
  t.same(moves, [
    { csv: 'v1', from: 'host-a1', to: 'host-a2' },
    { csv: 'v2', from: 'host-a1', to: 'host-b1' },
  ])
  // Same answer whatever order the view lists its members in.
  const rnd = { next: mulberry32(7) }
  for (let i = 0; i < 50; i++) {
    const members = ['host-a2', 'host-b1', 'host-b2'].sort(() => rnd.next() - 0.5)
    t.equal(chooseCoordinator('host-a1', 'site-b', members, siteOf), 'host-b1')
  }
})

t.test(
  'coordinator candidates (a coordinator node that lost its path asks them in this order): the array site first, never the owner itself',
  async (t) => {
    const siteOf = (n: string) => (n.startsWith('host-a') ? 'site-a' : 'site-b')
    const all = ['host-b2', 'host-a1', 'host-b1', 'host-a2']
    t.same(
      coordinatorCandidates('host-a2', 'site-a', all, siteOf),
      ['host-a1', 'host-b1', 'host-b2'],
      'same site first (wrapping), then the rest after the owner',
    )
    t.same(coordinatorCandidates('host-a1', 'site-b', all, siteOf), ['host-b1', 'host-b2', 'host-a2'])
    t.same(
      coordinatorCandidates('host-b1', null, all, siteOf),
      ['host-b2', 'host-a1', 'host-a2'],
      'no site known: name order after the owner',
    )
    t.same(coordinatorCandidates('host-a1', 'site-a', ['host-a1'], siteOf), [], 'alone: nobody to hand it to')
    t.same(coordinatorCandidates('host-a1', 'site-a', ['host-a1', 'host-a2', 'host-a2'], siteOf), ['host-a2'], 'each member once')
    for (const owner of all)
      t.equal(
        chooseCoordinator(
          owner,
          'site-a',
          all.filter((m) => m !== owner),
          siteOf,
        ),
        coordinatorCandidates(owner, 'site-a', all, siteOf)[0],
        `a takeover from ${owner} picks the first candidate`,
      )
  },
)

const ALLOCATION_SEEDS = seeds(import.meta.url, { base: 20240611, count: 1 })

t.test('region allocation: first fit, never overlapping, never past the volume (seeded)', async (t) => {
  const { failures } = await forEachSeed(t, ALLOCATION_SEEDS, (seed) => {
    const rnd = { next: mulberry32(seed) }
    const volume_blocks = 1000
    const regions = new Map<string, RegionRecord>()
    let n = 0
    for (let step = 0; step < 2000; step++) {
      if (regions.size > 0 && rnd.next() < 0.4) {
        const names = [...regions.keys()]
        regions.delete(names[Math.floor(rnd.next() * names.length)]!)
        continue
      }
      const blocks = 1 + Math.floor(rnd.next() * 200)
      try {
        regions.set(`r${n++}`, allocateBlocks(regions, volume_blocks, blocks, 'test'))
      } catch (e) {
        if (!isHvlabError(e) || e.code !== 'HVLAB_E_REFUSED')
          return `step ${step}: allocating ${blocks} blocks threw ${String(e)}, not a refusal (HVLAB_E_REFUSED)`
        t.match(String(e), /no room/, `seed ${seed}: refusal says why`)
        // A refusal only when no gap fits (first fit finds any gap that does).
        const sorted = [...regions.values()].sort((a, b) => a.offset_block - b.offset_block)
        let at = 0
        for (const r of sorted) {
          if (r.offset_block - at >= blocks) return `refused ${blocks} blocks although a gap at ${at} fits`
          at = r.offset_block + r.blocks
        }
        if (volume_blocks - at >= blocks) return 'refused although the tail fits'
      }
      const problems = layoutProblems(regions, volume_blocks)
      if (problems.length) return problems.join('; ')
    }
    return null
  })
  t.equal(failures, 0, 'every allocation fits, first fit, and a refusal only when nothing fits')
  t.same(allocateBlocks(new Map(), 10, 10, 'x'), { offset_block: 0, blocks: 10 }, 'a region may fill the volume exactly')
  t.throws(() => allocateBlocks(new Map(), 10, 11, 'x'), /no room/)
  t.throws(() => allocateBlocks(new Map(), 10, 0, 'x'), /at least one block/)
  t.same(
    layoutProblems(
      new Map([
        ['a', { offset_block: 0, blocks: 5 }],
        ['b', { offset_block: 4, blocks: 2 }],
      ]),
      10,
    ),
    ['regions a and b overlap'],
    'the checker catches overlap',
  )
})

t.test('region I/O stays inside its region', async (t) => {
  const r = { offset_block: 100, blocks: 10 }
  t.equal(volumeBlock(r, 0, 1, 'w'), 100)
  t.equal(volumeBlock(r, 9, 1, 'w'), 109)
  t.equal(volumeBlock(r, 2, 8, 'w'), 102)
  t.throws(() => volumeBlock(r, 9, 2, 'w'), /outside the region/)
  t.throws(() => volumeBlock(r, -1, 1, 'w'), /outside the region/)
})

t.test('direct/redirected state machine: one event per switch, with why', async (t) => {
  const who = { csv: 'v1', node: 'host-b1' }
  let s = initialPathState(0)
  t.equal(s.mode, 'Direct')
  let r = stepPathState(s, { kind: 'direct-ok' }, 10, who)
  t.equal(r.event, undefined, 'ok while direct: no event')
  r = stepPathState(r.state, { kind: 'direct-unreachable', detail: 'array array-a is not connected' }, 20, who)
  t.equal(r.state.mode, 'Redirected')
  t.equal(r.state.state_info, 'BlockRedirected')
  t.equal(r.state.reason, 'NoDiskConnectivity')
  t.equal(r.event?.kind, 'csv.io-redirected')
  s = r.state
  r = stepPathState(s, { kind: 'direct-unreachable', detail: 'again' }, 30, who)
  t.equal(r.event, undefined, 'still unreachable: no second event')
  t.equal(r.state.since_ms, 20, 'keeps when it was redirected')
  r = stepPathState(r.state, { kind: 'direct-ok' }, 50, who)
  t.equal(r.state.mode, 'Direct')
  t.equal(r.event?.kind, 'csv.io-direct')
  t.equal((r.event?.details as Record<string, unknown> | undefined)?.redirected_ms, 30)
})

t.test('database records round-trip; damaged entries are skipped and reported', async (t) => {
  const config: Record<string, string> = {
    [csvKey('v1')]: encodeCsv({ array: 'array-a', volume: 'csv-v1', size_bytes: 4096 * 100, block_size_bytes: 4096, owner: 'host-a1' }),
    [regionKey('v1', 'vm1')]: encodeRegion({ offset_block: 0, blocks: 10 }),
    [regionKey('v9', 'vm1')]: encodeRegion({ offset_block: 0, blocks: 10 }),
    [csvKey('bad')]: '{"array":1}',
    'role/x': '{}',
  }
  const d = decodeCsvs(config)
  t.same([...d.csvs.keys()], ['v1'])
  t.same(d.csvs.get('v1')?.regions.get('vm1'), { offset_block: 0, blocks: 10 })
  t.same(d.damaged.map((x) => x.key).sort(), [csvKey('bad'), regionKey('v9', 'vm1')])
  t.ok(regionKey('a'.repeat(48), 'b'.repeat(63)).length <= 128, 'the longest region key fits the database key limit')
})
