/**
 * The commands `hvlab up` suggests: this lab's own process names (never host-a1 for a lab
 * without one) and its --dir when it is not the default, quoted for the shell when needed.
 */
import t from 'tap'
import { shellWord, upHints } from '../../scripts/cli/up-hints.js'

const lab = (...processes: [string, 'host' | 'witness' | 'array'][]) => ({
  processes: processes.map(([name, role]) => ({ name, role })) as never,
})

t.test('the default dir: no --dir; the first host of the lab', async (t) => {
  t.same(upHints(lab(['hv1', 'host'], ['hv2', 'host'], ['w', 'witness']), '.hvlab', 'hvlab'), [
    'hvlab status',
    'hvlab kill hv1',
    'hvlab events --follow',
    'hvlab down',
  ])
})

t.test('another dir: every hint carries it; no host: another process', async (t) => {
  const hints = upHints(lab(['arr', 'array'], ['w', 'witness']), '/tmp/my lab', 'npx hvlab')
  t.same(hints, [
    "npx hvlab status --dir '/tmp/my lab'",
    "npx hvlab kill arr --dir '/tmp/my lab'",
    "npx hvlab events --follow --dir '/tmp/my lab'",
    "npx hvlab down --dir '/tmp/my lab'",
  ])
  t.notMatch(hints.join(' '), /host-a1/)
  t.equal(shellWord("it's"), `'it'\\''s'`)
  t.equal(shellWord('/tmp/lab-1'), '/tmp/lab-1')
})
