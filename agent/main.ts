/** One Hyper-V host process. */
import { runLabProcess } from '../shared/lab-process.js'

await runLabProcess('host', () => {})
