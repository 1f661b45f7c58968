// One tap process runs a batch of a folder's test files (test/batches/unit-2.test.ts: the
// second of the unit batches). Each file is imported fresh by t.mockImport, with `tap` bound to
// a subtest named after the file: every project module it imports is its own copy, as it would
// be in a process of its own, and its teardowns run when its subtest ends.
//
// Why: a tap process costs about 2.4 s of CPU before a test runs (tap's loaders, TypeScript);
// one per file was ~170 processes, over three minutes of a CI run on two cores.
//
// Which batch holds a file follows from the sorted listing (the i-th file goes to batch
// i mod N, N the number of batch files for the folder), so every file runs, exactly once, and a
// new test file needs nothing here. `npx tap test/unit/x.test.ts` still runs one file alone.
import { readdirSync } from 'node:fs'
import { basename, dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const testRoot = dirname(dirname(fileURLToPath(import.meta.url)))
const batchesDir = join(testRoot, 'batches')
const batchName = /^([a-z]+)-(\d+)\.test\.ts$/

export interface BatchPlace {
  folder: string
  index: number
  count: number
}

/** Which batch a batch file is (from its name) and how many batches its folder has. */
export function batchPlace(batchFileName: string, batchFileNames: readonly string[]): BatchPlace {
  const own = batchName.exec(batchFileName)
  if (!own) throw new Error(`${batchFileName}: a batch file is named FOLDER-N.test.ts`)
  const folder = own[1] ?? ''
  const indexes = batchFileNames
    .map((name) => batchName.exec(name))
    .filter((m) => m !== null && m[1] === folder)
    .map((m) => Number(m![2]))
    .sort((a, b) => a - b)
  if (indexes.some((n, i) => n !== i + 1)) {
    throw new Error(`${folder} batches must be numbered 1..N without gaps, found ${indexes.join(',')}`)
  }
  return { folder, index: Number(own[2]), count: indexes.length }
}

/** The test files of a folder in a batch: the i-th of the sorted listing goes to batch i mod N. */
export function filesOfBatch(testFileNames: readonly string[], place: BatchPlace): string[] {
  return testFileNames
    .filter((name) => name.endsWith('.test.ts'))
    .sort()
    .filter((_, i) => i % place.count === place.index - 1)
}

/** Runs the batch the calling batch file (its import.meta.url) stands for. */
export async function runBatchOf(batchFileUrl: string): Promise<void> {
  const place = batchPlace(basename(fileURLToPath(batchFileUrl)), readdirSync(batchesDir))
  const folderDir = join(testRoot, place.folder)
  const files = filesOfBatch(readdirSync(folderDir), place)
  if (files.length === 0) throw new Error(`batch ${place.folder}-${place.index} has no test files`)
  for (const file of files) {
    const path = join(folderDir, file)
    await t.test(relative(dirname(testRoot), path), async (fileTest) => {
      await fileTest.mockImport(path, { tap: fileTest })
    })
  }
}
