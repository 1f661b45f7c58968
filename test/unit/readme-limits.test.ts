/**
 * The README's table of limits says what the code does: every limit in LIMITS_DEFAULT has
 * its row with its default, and the table names no limit the code does not have.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { LIMITS_DEFAULT } from '../../shared/topology.js'

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

/** How the table writes a value: sizes in KiB or MiB, everything else as a plain number. */
function shown(key: string, value: number): string {
  if (!key.includes('bytes')) return String(value)
  if (value >= 1024 * 1024 && value % (1024 * 1024) === 0) return `${value / (1024 * 1024)} MiB`
  if (value >= 1024 && value % 1024 === 0) return `${value / 1024} KiB`
  return String(value)
}

t.test('every limit has its row with its default', async (t) => {
  for (const [key, value] of Object.entries(LIMITS_DEFAULT)) {
    t.ok(README.includes(`| \`${key}\` | ${shown(key, value)} |`), `${key}: ${shown(key, value)}`)
  }
})

t.test('the table lists no limit the code lacks', async (t) => {
  const rows = [...README.matchAll(/^\| `([a-z_]+)` \| [^|]+ \| /gm)].map((m) => m[1]!)
  const known = new Set(Object.keys(LIMITS_DEFAULT))
  const limitRows = rows.filter((k) => /_(max|per_host|per_array|threads|per_s|ms|kept)$/.test(k))
  t.same(
    limitRows.filter((k) => !known.has(k)),
    [],
    'no stale rows',
  )
  t.equal(limitRows.length, known.size, 'one row per limit')
})
