/** One storage array process. */
import { runLabProcess } from '../shared/lab-process.js'
import { startArrayService } from './array-service.js'

await runLabProcess('array', async (p) => {
  const service = await startArrayService(p)
  return () => service.close() // on SIGTERM/SIGINT, after the links are down
})
