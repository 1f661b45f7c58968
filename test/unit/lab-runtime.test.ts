import t from 'tap'
import { ALLOCATOR_ENV, LAB_NODE_ARGS, withAllocatorEnv, workerExecArgv } from '../../shared/lab-runtime.js'

t.test('the allocator settings are added where the environment has none, and an environment of its own wins', async (t) => {
  const env = withAllocatorEnv({ PATH: '/bin', MALLOC_TRIM_THRESHOLD_: '0' })
  t.equal(env.PATH, '/bin', 'the rest is kept')
  t.equal(env.MALLOC_MMAP_THRESHOLD_, ALLOCATOR_ENV.MALLOC_MMAP_THRESHOLD_, 'added')
  t.equal(env.MALLOC_TRIM_THRESHOLD_, '0', "the caller's own value stays")
  t.same(
    Object.keys(ALLOCATOR_ENV).sort(),
    ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_'],
    'both: either alone turns glibc’s adaptive threshold off',
  )
})

t.test("a worker's execArgv leaves out the lab's process-wide options and keeps the rest", async (t) => {
  t.same(workerExecArgv([...LAB_NODE_ARGS, '--import', 'tsx']), ['--import', 'tsx'])
  t.ok(LAB_NODE_ARGS.includes('--v8-pool-size=1') && LAB_NODE_ARGS.includes('--expose-gc'))
})
