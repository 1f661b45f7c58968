/**
 * `npm run bench -- --scale --vms N`'s measurement end to end on the default lab (the
 * 16-host one is for the bench, not for CI): it starts the lab through the CLI, creates
 * and starts a few VMs with the CLI and times `vm list`, reads every process's CPU and
 * wake-ups while idle and the view changes, and always stops it. Reads no speed.
 */
import t from 'tap'
import { formatScaleReport, runScaleBench } from '../../scripts/bench/scale.js'
import { vmNames } from '../../scripts/bench/scale-vms.js'
import { childrenWithoutCoverage } from './lab-fixture.js'

childrenWithoutCoverage() // the lab and the CLI runs the benchmark starts (lab-fixture.ts labProcessEnv)

t.test('VM names sort in the order they were made', async (t) => {
  t.same(vmNames(3), ['scale-vm-1', 'scale-vm-2', 'scale-vm-3'])
  t.same(vmNames(10).slice(8), ['scale-vm-09', 'scale-vm-10'])
})

t.test('the scale benchmark starts VMs through the CLI, measures the lab at idle and stops it', async (t) => {
  const r = await runScaleBench({ topology: 'topologies/two-site.json', idle_s: 3, vms: 4, vm_mib: 32 })
  t.equal(r.hosts, 4)
  t.equal(r.processes, 8, 'the controller and its seven processes')
  t.ok(r.up_s > 0 && r.cpu_at_ready_s > 0, 'start-up measured')
  const v = r.vms
  if (v === null) return t.fail('the VM part ran')
  t.equal(v.failed_commands, 0, `no CLI command failed (${v.first_errors.join('; ')})`)
  t.equal(v.running, 4, 'every VM runs')
  t.equal(v.vm_list_rows, 4, 'vm list shows each of them once')
  t.equal(v.running_per_host_max, 1, 'one VM per host: each preferred its own')
  t.ok(v.create_s > 0 && v.start_s > 0 && v.vm_list_median_s > 0 && v.vm_list_max_s >= v.vm_list_median_s, 'timed')
  t.ok(r.cpu_during_vms_s > 0, 'the lab worked while they were made')
  t.ok(r.idle_cpu_percent_of_core >= 0 && r.idle_wakes_per_s > 0, 'idle CPU and wake-ups measured')
  t.equal(r.idle_cpu_by_process.length, r.processes, 'per process')
  t.ok(r.view_changes_at_ready >= 4, `every host announced the view it formed (${r.view_changes_at_ready})`)
  t.match(formatScaleReport(r), /4 VMs of 32 MiB[^]*4 of 4 running[^]*vm list[^]*idle/)
})
