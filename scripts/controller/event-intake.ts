/**
 * The events a lab process sends for the timeline, taken in: each is checked against its
 * kind's declared schema (shared/timeline/events.ts) before it goes on the timeline. An
 * event of an unknown kind or with details that do not fit is refused — logged at the
 * process's refusal rate (shared/transport/refusal-log.ts), never on the timeline — and
 * the link, the process and the controller carry on.
 */
import type { Logger } from '../../shared/log.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { checkEventDetails, type EventRefusalCode } from '../../shared/timeline/events.js'
import { logRefusal } from '../../shared/transport/refusal-log.js'
import type { Timeline, TimelineEvent } from './timeline.js'

/** Puts a process's event on the timeline, or refuses it; returns the event, or the refusal's code. */
export function takeEvent(
  timeline: Timeline,
  log: Logger,
  from: string,
  message: MessageOf<'event'>,
): { ok: true; event: TimelineEvent } | { ok: false; code: EventRefusalCode } {
  const check = checkEventDetails(message.kind, message.details)
  if (!check.ok) {
    logRefusal(log, { process: from, kind: message.kind, code: check.code, reason: check.reason }, 'refused a timeline event')
    return { ok: false, code: check.code }
  }
  return { ok: true, event: timeline.append({ at_ms: message.at_ms, kind: check.event.kind, source: from, details: check.event.details }) }
}
