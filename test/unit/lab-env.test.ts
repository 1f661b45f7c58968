/**
 * The lab's environment settings (shared/lab-env.ts): the disk write journal switch and the
 * unsafe test-only settings; a value not allowed is refused with HVLAB_E_USAGE naming what is.
 */
import t from 'tap'
import { HVLAB_DISK_WRITE_JOURNAL, HVLAB_UNSAFE_TEST_ONLY, labEnv } from '../../shared/lab-env.js'

t.test('nothing set: no journal, nothing unsafe', async (t) => {
  const env = labEnv({})
  t.equal(env.disk_write_journal, false)
  t.equal(env.unsafe.size, 0)
  t.same(labEnv({ [HVLAB_DISK_WRITE_JOURNAL]: '', [HVLAB_UNSAFE_TEST_ONLY]: '' }), env, 'empty is the same as unset')
})

t.test('the disk write journal: 1 is on, 0 is off, anything else is refused', async (t) => {
  t.equal(labEnv({ HVLAB_DISK_WRITE_JOURNAL: '1' }).disk_write_journal, true)
  t.equal(labEnv({ HVLAB_DISK_WRITE_JOURNAL: '0' }).disk_write_journal, false)
  for (const bad of ['true', 'yes', 'on', ' 1', '2', '01', 'x'.repeat(5000)]) {
    t.throws(
      () => labEnv({ HVLAB_DISK_WRITE_JOURNAL: bad }),
      { code: 'HVLAB_E_USAGE', message: /HVLAB_DISK_WRITE_JOURNAL must be '1' \(on\), '0' or unset \(off\)/ },
      JSON.stringify(bad.slice(0, 10)),
    )
  }
  t.throws(() => labEnv({ HVLAB_DISK_WRITE_JOURNAL: 'x'.repeat(5000) }), { message: /got "x{64}"$/ }, 'a long value is quoted short')
})

t.test('unsafe settings: a comma-separated list of known words', async (t) => {
  t.same([...labEnv({ HVLAB_UNSAFE_TEST_ONLY: 'ignore-quorum-loss' }).unsafe], ['ignore-quorum-loss'])
  t.same(
    [...labEnv({ HVLAB_UNSAFE_TEST_ONLY: ' ignore-quorum-loss , ignore-quorum-loss,' }).unsafe],
    ['ignore-quorum-loss'],
    'blanks, repeats and empty entries are fine',
  )
  for (const bad of ['ignore-quorum', 'IGNORE-QUORUM-LOSS', 'ignore-quorum-loss,skip-fencing', '1']) {
    t.throws(
      () => labEnv({ HVLAB_UNSAFE_TEST_ONLY: bad }),
      {
        code: 'HVLAB_E_USAGE',
        message: /HVLAB_UNSAFE_TEST_ONLY holds unknown setting ".+"; allowed \(comma-separated\): ignore-quorum-loss$/,
      },
      bad,
    )
  }
})
