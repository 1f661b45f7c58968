/**
 * What the lab controller does with an error nothing caught (`uncaughtException`,
 * `unhandledRejection`). Its work is independent requests and events (a control request,
 * a process's message, a child's exit), so one that failed does not make the rest unsafe:
 * the error is logged (fatal) and put on the timeline, and the controller keeps serving.
 * Errors that repeat — more than UNEXPECTED_ERRORS_MAX within UNEXPECTED_ERRORS_WINDOW_MS —
 * mean its state can no longer be trusted: it aborts the lab cleanly (every process
 * stopped, the reason logged and on the timeline) and exits 1, at the latest
 * ABORT_DEADLINE_MS after deciding to.
 */
import { describeError } from '../../shared/errors.js'
import type { Logger } from '../../shared/log.js'
import type { EmitEvent } from '../../shared/timeline/events.js'

export const UNEXPECTED_ERRORS_MAX = 5
export const UNEXPECTED_ERRORS_WINDOW_MS = 10_000
/** A clean stop (TERM, then KILL after 3 s, per process) that takes longer than this is cut short. */
export const ABORT_DEADLINE_MS = 15_000
/** Characters of an error's message kept on the timeline. */
const TIMELINE_MESSAGE_CHARS_MAX = 500

/** Counts errors in a sliding window: `record` says whether the limit is now exceeded. Pure. */
export class ErrorBurst {
  private readonly times_ms: number[] = []

  constructor(
    private readonly errors_max = UNEXPECTED_ERRORS_MAX,
    private readonly window_ms = UNEXPECTED_ERRORS_WINDOW_MS,
  ) {}

  record(now_ms: number): boolean {
    this.times_ms.push(now_ms)
    while (this.times_ms.length > 0 && this.times_ms[0]! <= now_ms - this.window_ms) this.times_ms.shift()
    return this.times_ms.length > this.errors_max
  }
}

export interface ErrorPolicyDeps {
  log: Logger
  /** Puts an event on the lab's timeline; the policy survives it failing (a full disk). */
  record: EmitEvent
  /** Starts the lab's clean stop with this reason; the caller exits once it is done. */
  abort(reason: string): void
  /** Ends the process (process.exit in production). */
  exit(code: number): void
  now_ms(): number
  /** Where the errors are heard (process in production). */
  target: NodeJS.EventEmitter
  burst?: ErrorBurst
}

/** Installs the policy on `deps.target`; returns its removal. */
export function installErrorPolicy(deps: ErrorPolicyDeps): () => void {
  const burst = deps.burst ?? new ErrorBurst()
  let aborting = false
  const onError = (origin: 'uncaughtException' | 'unhandledRejection') => (e: unknown) => {
    deps.log.fatal(
      { err: describeError(e), stack: e instanceof Error ? e.stack : undefined, origin, aborting },
      'unexpected error in the lab controller',
    )
    safely(deps, () => deps.record('controller.error', { origin, error: describeError(e).slice(0, TIMELINE_MESSAGE_CHARS_MAX) }))
    if (aborting || !burst.record(deps.now_ms())) return
    aborting = true
    const reason = `more than ${UNEXPECTED_ERRORS_MAX} unexpected errors within ${UNEXPECTED_ERRORS_WINDOW_MS} ms; the controller's state cannot be trusted, so it stops the lab (see its log)`
    deps.log.fatal({ reason }, 'aborting the lab')
    safely(deps, () => deps.record('lab.aborting', { reason }))
    setTimeout(() => deps.exit(1), ABORT_DEADLINE_MS).unref()
    safely(deps, () => deps.abort(reason))
  }
  const onException = onError('uncaughtException')
  const onRejection = onError('unhandledRejection')
  deps.target.on('uncaughtException', onException)
  deps.target.on('unhandledRejection', onRejection)
  return () => {
    deps.target.off('uncaughtException', onException)
    deps.target.off('unhandledRejection', onRejection)
  }
}

/** Runs a step of the policy that may itself fail; the failure is logged, never thrown from the handler. */
function safely(deps: ErrorPolicyDeps, step: () => void): void {
  try {
    step()
  } catch (e) {
    deps.log.fatal({ err: describeError(e) }, 'the error policy could not complete a step')
  }
}
