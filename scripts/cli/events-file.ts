/**
 * The timeline of a lab that is not running, read from its data dir: the controller wrote
 * every event to `events.<n>.jsonl` (rotated; scripts/controller/timeline.ts). The files
 * are read oldest first, a line at a time (they may be large); a line that is not a whole
 * event of a declared kind with valid details — torn by a kill -9, or not the lab's — is
 * passed over and counted.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'
import { HvlabError } from '../../shared/errors.js'
import { rotatedPaths, type LabLayout } from '../../shared/lab-layout.js'
import { checkEventDetails, type TimelineEvent } from '../../shared/timeline/events.js'

export interface EventsFileRead {
  /** The files read, oldest first. */
  files: string[]
  /** Lines that were not a whole event. */
  lines_skipped: number
}

/** One line of an events file as an event, or undefined when it is not one. */
export function timelineEventOf(line: string): TimelineEvent | undefined {
  let v: unknown
  try {
    v = JSON.parse(line)
  } catch {
    return undefined
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined
  const e = v as Record<string, unknown>
  if (!Number.isSafeInteger(e.seq) || (e.seq as number) < 1) return undefined
  if (typeof e.at_ms !== 'number' || !Number.isFinite(e.at_ms) || typeof e.source !== 'string') return undefined
  // The kind and its details are checked as the controller checks an event it receives.
  if (typeof e.kind !== 'string' || !checkEventDetails(e.kind, e.details).ok) return undefined
  return v as TimelineEvent
}

/** Passes every event of the lab's events files to `onEvent`, oldest first; throws HVLAB_E_LAB when there are none. */
export async function readEventsFiles(layout: LabLayout, onEvent: (e: TimelineEvent) => void): Promise<EventsFileRead> {
  const files = rotatedPaths(layout.events)
  if (files.length === 0)
    throw new HvlabError(
      'HVLAB_E_LAB',
      `no lab is running in ${layout.root} and it has no timeline (events.<n>.jsonl); start a lab with \`hvlab up --detach --dir ${layout.root}\`, or pass the --dir of one`,
    )
  let lines_skipped = 0
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
    for await (const line of lines) {
      if (line.length === 0) continue
      const e = timelineEventOf(line)
      if (e) onEvent(e)
      else lines_skipped += 1
    }
  }
  return { files, lines_skipped }
}
