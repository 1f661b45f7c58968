import { runBatchOf } from './run-batch.js'

await runBatchOf(import.meta.url)
