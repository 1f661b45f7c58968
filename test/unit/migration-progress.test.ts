import t from 'tap'
import { formatProgressBar } from '../../scripts/cli/migration-progress.js'

const base = {
  stage: 'precopy',
  round: 3,
  pages_left: 4096,
  pages_total: 16384,
  bandwidth_bytes_per_s: 85 * 1024 * 1024,
  expected_blackout_ms: 41.6,
}

t.test('one line with round, pages left, rate and expected blackout', async (t) => {
  const line = formatProgressBar(base, 120)
  t.match(line, /precopy round 3, 4096 pages left, 85\.0 MiB\/s, expected blackout 42 ms/)
  t.match(line, /^\[###############\.\.\.\.\.\]  75%/, 'three quarters copied')
  t.notMatch(line, /[\r\n]/, 'no line breaks; the caller adds \\r')
  t.equal(line.length, 119, 'padded to the terminal width (minus one) so a shorter line covers a longer one')
})

t.test('the bar at the ends, and an unknown blackout', async (t) => {
  t.match(formatProgressBar({ ...base, pages_left: 16384, expected_blackout_ms: null }), /^\[\.{20}\]   0% .*expected blackout -/)
  t.match(formatProgressBar({ ...base, pages_left: 0 }), /^\[#{20}\] 100%/)
  t.match(
    formatProgressBar({ ...base, pages_total: 0, pages_left: 10 }),
    /^\[\.{20}\]   0%/,
    'more left than the total seen counts as the total',
  )
})

t.test('cut to a narrow terminal', async (t) => {
  const line = formatProgressBar(base, 40)
  t.equal(line.length, 39)
  t.ok(line.startsWith('[###############'))
})
