/**
 * The lab's whole timeline from its files (`events.<n>.jsonl`, rotated), for a soak's
 * history: the controller answers GET /v1/events from memory, which keeps only the newest
 * events, while the files keep them all. A line that is not a whole event (cut by a
 * rotation) is skipped.
 */
import { readFileSync } from 'node:fs'
import { labLayout, rotatedPaths } from '../../shared/lab-layout.js'
import { historyRecord, type RecordOf } from './history.js'

export function readTimeline(dir: string): RecordOf<'event'>[] {
  const out: RecordOf<'event'>[] = []
  for (const file of rotatedPaths(labLayout(dir).events)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (line.length === 0) continue
      try {
        const r = historyRecord.safeParse({ t: 'event', ...(JSON.parse(line) as object) })
        if (r.success && r.data.t === 'event') out.push(r.data)
      } catch {
        // not a whole event line
      }
    }
  }
  return out.sort((a, b) => a.seq - b.seq)
}
