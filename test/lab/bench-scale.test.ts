/**
 * `npm run bench -- --scale`'s measurement end to end on the default lab (the 16-host one
 * is for the bench, not for CI): it starts the lab through the CLI, reads every process's
 * CPU and wake-ups while idle and the view changes, and always stops it. Reads no speed.
 */
import t from 'tap'
import { formatScaleReport, runScaleBench } from '../../scripts/bench/scale.js'

t.test('the scale benchmark measures a whole lab at idle and stops it', async (t) => {
  const r = await runScaleBench({ topology: 'topologies/two-site.json', idle_s: 3 })
  t.equal(r.hosts, 4)
  t.equal(r.processes, 8, 'the controller and its seven processes')
  t.ok(r.up_s > 0 && r.cpu_at_ready_s > 0, 'start-up measured')
  t.ok(r.idle_cpu_percent_of_core >= 0 && r.idle_wakes_per_s > 0, 'idle CPU and wake-ups measured')
  t.equal(r.idle_cpu_by_process.length, r.processes, 'per process')
  t.ok(r.view_changes_at_ready >= 4, `every host announced the view it formed (${r.view_changes_at_ready})`)
  t.match(formatScaleReport(r), /idle/)
})
