/**
 * An operator action as the soak records it (scripts/soak/operator-actions.ts), against a
 * fake lab's CLI: a success keeps no message; a refusal keeps its stable code and what the
 * CLI said on stderr; a move that ran and failed (no code) keeps the result it printed.
 */
import t from 'tap'
import { runOperatorAction } from '../../scripts/soak/operator-actions.js'
import type { CliRun, SoakLab } from '../../scripts/soak/soak-lab.js'

function labAnswering(run: CliRun): { lab: SoakLab; commands: string[][] } {
  const commands: string[][] = []
  const lab = {
    async cli(...args: string[]) {
      commands.push(args)
      return run
    },
  } as unknown as SoakLab
  return { lab, commands }
}

const plan = { kind: 'quick-move', vm: 'vm1', to: 'host-b1' } as const

t.test('what a failed action said is kept; a success keeps nothing', async (t) => {
  const ok = labAnswering({ exit: 0, error_code: null, stdout: 'quick-migrated vm vm1 to host-b1', stderr: '' })
  const done = await runOperatorAction(ok.lab, plan, [])
  t.match(done, { t: 'op', kind: 'quick-move', target: 'vm1 → host-b1', ok: true, error_code: null })
  t.notOk('said' in done, 'nothing said')
  t.same(ok.commands[0]?.slice(0, 6), ['vm', 'move', 'vm1', '--to', 'host-b1', '--quick'])

  const refused = labAnswering({ exit: 1, error_code: 'HVLAB_E_STATE', stdout: '', stderr: 'hvlab: vm vm1 is moving already\n' })
  t.match(await runOperatorAction(refused.lab, plan, []), {
    ok: false,
    error_code: 'HVLAB_E_STATE',
    said: 'hvlab: vm vm1 is moving already',
  })

  const ranAndFailed = labAnswering({
    exit: 1,
    error_code: null,
    stdout: 'vm vm1 stays on host-a1: failed: the link was lost\n',
    stderr: '',
  })
  t.match(await runOperatorAction(ranAndFailed.lab, plan, []), {
    ok: false,
    error_code: null,
    said: 'vm vm1 stays on host-a1: failed: the link was lost',
  })
})
