/** The file-share witness process. */
import { runLabProcess } from '../shared/lab-process.js'

await runLabProcess('witness', () => {})
