/**
 * One seed variable for every seeded test: HVLAB_SEED.
 *
 *   unset                each test runs its own CI seeds: `count` seeds from `base`
 *   HVLAB_SEED=1234      every seeded test of the run uses seed 1234 alone (rerun a failure)
 *   HVLAB_SEED=1234:500  500 seeds from 1234 (a longer search than CI makes)
 *
 * Run i of a test uses seed base + i, and a run depends on its seed alone (never on i),
 * so the seed a failure prints reruns exactly that run:
 *
 *   HVLAB_SEED=1234 npx tap test/sim/cluster.test.ts --disable-coverage
 */
import { relative } from 'node:path'
import { fileURLToPath } from 'node:url'

export const SEED_VARIABLE = 'HVLAB_SEED'

/** Seeds a test runs unless HVLAB_SEED says otherwise: `count` from `base`, or a list (fixed seeds). */
export type CiSeeds = { base: number; count: number } | readonly number[]

export interface Seeds {
  /** The seeds to run, in order. */
  readonly list: readonly number[]
  /** HVLAB_SEED chose them (a rerun or a longer search), not the test's CI default. */
  readonly fromEnv: boolean
  /** The command that reruns `seed` of this test file alone. */
  rerun(seed: number): string
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** HVLAB_SEED as a base and a count, or undefined when unset. */
export function seedFromEnv(value = process.env[SEED_VARIABLE]): { base: number; count: number } | undefined {
  if (value === undefined || value.trim() === '') return undefined
  const m = /^\s*(\d+)(?::(\d+))?\s*$/.exec(value)
  const base = m ? Number(m[1]) : NaN
  const count = m?.[2] === undefined ? 1 : Number(m[2])
  if (!Number.isSafeInteger(base) || !Number.isSafeInteger(count) || count < 1) {
    throw new Error(`${SEED_VARIABLE} must be a seed (1234) or a seed and a count (1234:500), got ${JSON.stringify(value)}`)
  }
  return { base, count }
}

/**
 * The seeds of one test: HVLAB_SEED's if set, else `ci`. `file` is the test's
 * `import.meta.url` (for the rerun command).
 */
export function seeds(file: string, ci: CiSeeds): Seeds {
  const env = seedFromEnv()
  const plan = env ?? ci
  const list = 'base' in plan ? Array.from({ length: plan.count }, (_, i) => plan.base + i) : [...plan]
  const path = relative(ROOT, fileURLToPath(file))
  return {
    list,
    fromEnv: env !== undefined,
    rerun: (seed) => `${SEED_VARIABLE}=${seed} npx tap ${path} --disable-coverage`,
  }
}

/** What one seeded run found: a problem (null: none) and, for a failure, what to print with it (a schedule, a trace). */
export interface SeedResult {
  problem: string | null
  report?: string
}

interface Reporter {
  fail(message: string): unknown
  comment(...message: unknown[]): unknown
}

/** Reports a failing seed: its problem and the command that reruns it, with the report (if any) as a comment. */
export function reportSeed(t: Reporter, s: Seeds, seed: number, problem: string, report?: string): void {
  const how = `rerun: ${s.rerun(seed)}`
  t.comment(`FAILING SEED ${seed}: ${problem}\n${how}${report ? `\n${report}` : ''}`)
  t.fail(`seed ${seed}: ${problem} (${how})`)
}

/**
 * Runs `run` for every seed; a seed whose run returns a problem or throws is reported
 * (reportSeed). Stops after `failures_max` failing seeds. Returns how many ran and failed,
 * for the caller's own summary assertion.
 */
export async function forEachSeed(
  t: Reporter,
  s: Seeds,
  run: (seed: number) => SeedResult | string | null | Promise<SeedResult | string | null>,
  options: { failures_max?: number } = {},
): Promise<{ runs: number; failures: number }> {
  const failures_max = options.failures_max ?? 3
  let runs = 0
  let failures = 0
  for (const seed of s.list) {
    runs++
    let r: SeedResult
    try {
      const out = await run(seed)
      r = typeof out === 'string' || out === null ? { problem: out } : out
    } catch (e) {
      r = { problem: `threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}` }
    }
    if (r.problem === null) continue
    failures++
    reportSeed(t, s, seed, r.problem, r.report)
    if (failures >= failures_max) break
  }
  return { runs, failures }
}
