/** The file-share witness process: arbitrates the cluster's quorum (witness-service.ts). */
import { runLabProcess } from '../shared/lab-process.js'
import { startWitness } from './witness-service.js'

await runLabProcess('witness', async (p) => {
  await startWitness(p)
})
