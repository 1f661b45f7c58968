/**
 * `hvlab soak run` and `soak report` refuse bad input before anything starts, with a clear
 * error: an unknown fault, a negative or zero duration, too many VMs, a topology that fails
 * validation, a report of a dir that holds no history. Nothing is created for a refused run.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runCliInProcess } from '../lab/lab-fixture.js'

t.test('a refused soak starts nothing and says what to do', async (t) => {
  const root = t.testdir()
  const dir = join(root, 'soak')
  const bad = join(root, 'bad.json')
  writeFileSync(bad, JSON.stringify({ name: 'x', sites: [], hosts: [] }))
  const cases: { args: string[]; code: number; says: RegExp }[] = [
    {
      args: ['--minutes', '1', '--faults', 'kill,explode'],
      code: 2,
      says: /unknown fault "explode".*kill, pause, partition, wan, clock, array-kill, witness-kill, disk/,
    },
    { args: ['--minutes', '-1'], code: 2, says: /--minutes/ },
    { args: ['--minutes', '0'], code: 2, says: /--minutes/ },
    { args: ['--minutes', '1', '--vms', '99'], code: 2, says: /--vms/ },
    { args: ['--minutes', '1', '--seed', 'abc'], code: 2, says: /--seed/ },
    { args: ['--minutes', '1', '--topology', bad], code: 1, says: /bad\.json/ },
    { args: ['--minutes', '1', '--topology', join(root, 'none.json')], code: 1, says: /cannot read topology file/ },
    { args: [], code: 2, says: /--minutes/ },
  ]
  for (const c of cases) {
    const r = await runCliInProcess(['soak', 'run', ...c.args, '--dir', dir])
    t.equal(r.code, c.code, `${c.args.join(' ')}: exit ${c.code}`)
    t.match(r.stderr, c.says, `${c.args.join(' ')}: says why`)
    t.notOk(existsSync(dir), `${c.args.join(' ')}: nothing created`)
  }
})

t.test('soak report needs a soak history', async (t) => {
  const root = t.testdir({ 'history.jsonl': '{"t":"end","faults_stopped_ms":1,"ended_ms":2}\n' })
  const none = await runCliInProcess(['soak', 'report', join(root, 'nothing-here')])
  t.equal(none.code, 1)
  t.match(none.stderr, /no history at .*history\.jsonl; give the data dir of a soak run/)
  const wrong = await runCliInProcess(['soak', 'report', root])
  t.equal(wrong.code, 2)
  t.match(wrong.stderr, /does not start with a meta record/)
})
