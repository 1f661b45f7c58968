import t from 'tap'
import { batchPlace, filesOfBatch } from '../batches/run-batch.js'

const batchFiles = ['run-batch.ts', 'sim-1.test.ts', 'sim-2.test.ts', 'unit-1.test.ts', 'unit-2.test.ts', 'unit-3.test.ts']
const testFiles = ['b.test.ts', 'a.test.ts', 'fixture.ts', 'e.test.ts', 'c.test.ts', 'd.test.ts']

t.test('a batch file names its folder and place; the count is its siblings', async (t) => {
  t.same(batchPlace('unit-2.test.ts', batchFiles), { folder: 'unit', index: 2, count: 3 })
  t.same(batchPlace('sim-1.test.ts', batchFiles), { folder: 'sim', index: 1, count: 2 })
})

t.test('every test file lands in exactly one batch, fixtures in none', async (t) => {
  const batches = [1, 2, 3].map((index) => filesOfBatch(testFiles, { folder: 'unit', index, count: 3 }))
  t.same(batches, [['a.test.ts', 'd.test.ts'], ['b.test.ts', 'e.test.ts'], ['c.test.ts']])
  t.same(batches.flat().sort(), testFiles.filter((f) => f.endsWith('.test.ts')).sort())
})

t.test('a badly named or numbered batch file is refused with what to do', async (t) => {
  t.throws(() => batchPlace('unit.test.ts', batchFiles), /named FOLDER-N\.test\.ts/)
  t.throws(() => batchPlace('unit-1.test.ts', ['unit-1.test.ts', 'unit-3.test.ts']), /numbered 1\.\.N without gaps, found 1,3/)
})
