/** One storage array process. */
import { runLabProcess } from '../shared/lab-process.js'

await runLabProcess('array', () => {})
