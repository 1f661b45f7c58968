/**
 * `hvlab vm list`'s section for the VMs standalone hosts run from their own disks
 * (scripts/cli/standalone-vms.ts): none, nothing printed; else one row each, saying whether
 * it was created there or failed over there, and whether it runs.
 */
import t from 'tap'
import { formatStandaloneVms } from '../../scripts/cli/standalone-vms.js'

t.test('no standalone vms: no section', async (t) => {
  t.equal(formatStandaloneVms([]), '')
})

t.test('one row per vm: created there or failed over there, running or stopped', async (t) => {
  const text = formatStandaloneVms([
    { vm: 'branch1', host: 'replica-dr1', state: 'created-here', running: true, memory_mib: 128 },
    { vm: 'web1', host: 'replica-dr2', state: 'failed-over', running: false, memory_mib: 512 },
  ])
  const lines = text.split('\n')
  t.equal(lines[1], 'vms on standalone hosts, from their own disks:')
  t.match(lines[2], /^NAME\s+HOST\s+STATE\s+MEMORY$/)
  t.match(lines[3], /^branch1\s+replica-dr1\s+running \(created there\)\s+128 MiB$/)
  t.match(lines[4], /^web1\s+replica-dr2\s+stopped \(failed over there\)\s+512 MiB$/)
  t.equal(lines.length, 5)
})
