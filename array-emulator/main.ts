/** One storage array process. */
import { runLabProcess } from '../shared/lab-process.js'
import { startArrayService } from './array-service.js'

await runLabProcess('array', async (p) => {
  await startArrayService(p)
})
