import t from 'tap'
import { formatProgressBar, progressText } from '../../scripts/cli/migration-progress.js'
import { MigrationStatusBook, runningStatus } from '../../agent/migration/migration-status.js'
import { PAGE_SIZE_BYTES } from '../../shared/protocol/page-size.js'

const base = {
  mode: 'live' as const,
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

t.test('a quick migration says it copies while the VM is down, never "precopy round 0", and expects no blackout', async (t) => {
  const line = progressText({ ...base, mode: 'quick', round: 0, pages_left: 8192 })
  t.notMatch(line, /precopy|round|expected blackout/)
  t.match(line, /^copying memory \(vm down\), 8192 pages left, 85\.0 MiB\/s$/)
})

t.test('the rate shown is the memory copied per second when the source reports it', async (t) => {
  t.match(progressText({ ...base, copy_rate_bytes_per_s: 512 * 1024 * 1024 }), /512\.0 MiB\/s/)
  t.match(progressText({ ...base, copy_rate_bytes_per_s: 0 }), /85\.0 MiB\/s/, 'the wire rate before any slice was sent')
})

t.test('round 0 on the source: pages left fall as slices are sent, and the expected blackout follows the measured rate', async (t) => {
  const book = new MigrationStatusBook()
  const st = runningStatus({ ticket: 'tabc', mode: 'live' }, 'host-a2', 16384, 'queued')
  book.remember('web1', st)
  book.follow('m1', st)
  book.onEvent({
    kind: 'migration.precopy',
    details: {
      migration_id: 'm1',
      vm: 'web1',
      destination: 'host-a2',
      round: 0,
      pages_left: 16384,
      rate_bytes_per_s: null,
      expected_blackout_ms: null,
      throttle_pct: 0,
    },
  })
  const rate = 4096 * PAGE_SIZE_BYTES // 4096 pages/s
  book.onRoundProgress({ migration_id: 'm1', round: 0, pages_done: 4096, pages_total: 16384, copy_rate_bytes_per_s: rate })
  const r1 = book.reply('web1', 'host-a1') as { pages_left: number; expected_blackout_ms: number; copy_rate_bytes_per_s: number }
  t.equal(r1.pages_left, 12288, 'a quarter sent')
  t.equal(r1.expected_blackout_ms, 3000, '12288 pages at 4096 pages/s')
  t.equal(r1.copy_rate_bytes_per_s, rate)
  t.match(
    formatProgressBar({ ...base, ...r1, mode: 'live', stage: 'precopy', round: 0, pages_total: 16384 }, 120),
    /^\[#####\.{15}\]  25% precopy round 0, 12288 pages left, 16\.0 MiB\/s, expected blackout 3000 ms/,
    'the bar moves within round 0',
  )
  book.onRoundProgress({ migration_id: 'm1', round: 3, pages_done: 1, pages_total: 2, copy_rate_bytes_per_s: rate })
  t.equal((book.reply('web1', 'host-a1') as { pages_left: number }).pages_left, 12288, 'progress of another round is ignored')
})
