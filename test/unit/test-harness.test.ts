/**
 * The test harness itself: the one seed variable (test/sim/seed.ts) and the transcript
 * runner (test/sim/transcript.ts) must check what they claim — a failing seed is reported
 * with the command that reruns it, and a transcript whose output differs fails.
 */
import t from 'tap'
import { HvlabError } from '../../shared/errors.js'
import { forEachSeed, seedFromEnv, seeds } from '../sim/seed.js'
import { parseTranscript, runTranscript, words, type TranscriptDriver } from '../sim/transcript.js'

function withSeedEnv<T>(value: string | undefined, fn: () => T): T {
  const before = process.env.HVLAB_SEED
  if (value === undefined) delete process.env.HVLAB_SEED
  else process.env.HVLAB_SEED = value
  try {
    return fn()
  } finally {
    if (before === undefined) delete process.env.HVLAB_SEED
    else process.env.HVLAB_SEED = before
  }
}

t.test('HVLAB_SEED: unset runs the CI seeds; a seed reruns it alone; seed:count searches further', async (t) => {
  withSeedEnv(undefined, () => {
    t.same(seeds(import.meta.url, { base: 5, count: 3 }).list, [5, 6, 7])
    t.same(seeds(import.meta.url, [11, 13]).list, [11, 13], 'a test may list fixed seeds')
    t.equal(seeds(import.meta.url, [1]).fromEnv, false)
  })
  withSeedEnv('1234', () => {
    const s = seeds(import.meta.url, { base: 5, count: 3 })
    t.same([s.list, s.fromEnv], [[1234], true])
    t.equal(s.rerun(1234), 'HVLAB_SEED=1234 npx tap test/unit/test-harness.test.ts --disable-coverage')
  })
  withSeedEnv('10:3', () => t.same(seeds(import.meta.url, [1]).list, [10, 11, 12]))
  for (const bad of ['x', '-1', '1:0', '1:2:3', '1.5'])
    t.throws(() => seedFromEnv(bad), { message: /HVLAB_SEED must be a seed/ }, `refuses ${bad}`)
})

t.test('forEachSeed reports a failing or throwing seed with its rerun command, and stops after failures_max', async (t) => {
  const failed: string[] = []
  const comments: string[] = []
  const reporter = { fail: (m: string) => failed.push(m), comment: (m: unknown) => comments.push(String(m)) }
  const s = withSeedEnv(undefined, () => seeds(import.meta.url, { base: 1, count: 10 }))
  const r = await forEachSeed(
    reporter,
    s,
    (seed) => {
      if (seed === 2) return { problem: 'broken', report: 'schedule: x' }
      if (seed === 4) throw new TypeError('a bug')
      return seed === 6 ? 'also broken' : null
    },
    { failures_max: 2 },
  )
  t.same(r, { runs: 4, failures: 2 }, 'stopped after the second failing seed')
  t.match(failed[0], /^seed 2: broken \(rerun: HVLAB_SEED=2 npx tap test\/unit\/test-harness\.test\.ts --disable-coverage\)$/)
  t.match(failed[1], /^seed 4: threw TypeError: a bug/)
  t.match(comments[0], /FAILING SEED 2: broken\nrerun: HVLAB_SEED=2 .*\nschedule: x/)
})

/** A toy machine: `add <n>` prints the running total; `refuse` throws a refusal; `crash` a bug. */
function counter(): TranscriptDriver {
  let total = 0
  return {
    run(command, args) {
      if (command === 'add') return args.map((a) => `total=${(total += Number(a))}`)
      if (command === 'refuse') throw new HvlabError('HVLAB_E_STATE', 'not now')
      if (command === 'crash') throw new TypeError('oops')
      return []
    },
  }
}

t.test('a transcript: inputs, expected output, comments; a mismatch is found and the whole actual transcript given', async (t) => {
  const text = '# title\n> add 1 2\ntotal=1\ntotal=3\n\n# refused, as output\n> refuse\nrefused HVLAB_E_STATE: not now\n> noop\n'
  const p = parseTranscript(text)
  t.same(
    p.blocks.map((b) => [b.line, b.input, b.expected]),
    [
      [2, 'add 1 2', ['total=1', 'total=3']],
      [7, 'refuse', ['refused HVLAB_E_STATE: not now']],
      [9, 'noop', []],
    ],
  )
  const ok = runTranscript(text, counter())
  t.equal(ok.mismatch, null)
  t.equal(ok.actual, text, 'a passing transcript prints itself back')
  const wrong = runTranscript(text.replace('total=3', 'total=4'), counter())
  t.match(wrong.mismatch, { line: 2, expected: ['total=1', 'total=4'], actual: ['total=1', 'total=3'] })
  t.equal(wrong.actual, text, 'the actual transcript is the right one, to paste')
  t.throws(() => runTranscript('> crash\n', counter(), 'x.txt'), { message: /x\.txt:1: > crash: TypeError: oops/ }, 'a bug is not output')
  t.throws(() => parseTranscript('total=1\n> add 1\n'), /an output line must follow an input/)
  t.same(words('set-config "a b" c'), ['set-config', 'a b', 'c'])
})
