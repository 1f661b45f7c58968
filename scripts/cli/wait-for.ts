/**
 * How a command that starts something long waits for its outcome: it polls typed state
 * (a role record, a group's status, timeline events by kind) until a step says done or
 * failed, or until its timeout. A timeout says what state it was in and the command that
 * watches it; a poll that gets no answer for a while (a view change, a restarting host)
 * counts as still waiting. Every waiting command takes `--no-wait` and `--timeout-s N`
 * (waitOptions) and calls waitFor; nothing here reads text back.
 */
import type { Command } from 'commander'
import { HvlabError, describeError, isTransientError } from '../../shared/errors.js'
import { intIn } from './options.js'

/** What one poll found. */
export type WaitStep<T> =
  | { readonly kind: 'done'; readonly value: T }
  /** It will not happen: `error` says why (exit 1 with it). */
  | { readonly kind: 'failed'; readonly error: HvlabError }
  /** Not yet: `state` says where it is, for the timeout message ("starting on host-a1"). */
  | { readonly kind: 'waiting'; readonly state: string }

export const done = <T>(value: T): WaitStep<T> => ({ kind: 'done', value })
export const failed = (code: HvlabError['code'], message: string): WaitStep<never> => ({
  kind: 'failed',
  error: new HvlabError(code, message),
})
export const waiting = (state: string): WaitStep<never> => ({ kind: 'waiting', state })

export interface WaitSpec<T> {
  /** What is awaited, for the timeout message: "vm web1 to run". */
  what: string
  /** The command that shows it meanwhile: "`hvlab vm list`". */
  watch: string
  timeout_ms: number
  poll: () => Promise<WaitStep<T>>
}

/** Time as the wait sees it; tests pass a fake one. */
export interface WaitClock {
  now(): number
  sleep(ms: number): Promise<void>
}

/** Real time. The sleep keeps the process alive (a CLI waiting on nothing else must not exit). */
export const realWaitClock: WaitClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
}

/** How often a waiting command polls. */
export const WAIT_POLL_MS = 250

/** Polls `spec.poll` until done (its value), failed (throws its error) or the timeout (throws HVLAB_E_TIMEOUT). */
export async function waitFor<T>(spec: WaitSpec<T>, clock: WaitClock = realWaitClock, poll_ms = WAIT_POLL_MS): Promise<T> {
  const deadline = clock.now() + spec.timeout_ms
  let state = 'no answer yet'
  for (;;) {
    const step = await pollOnce(spec)
    if (step.kind === 'done') return step.value
    if (step.kind === 'failed') throw step.error
    state = step.state
    if (clock.now() >= deadline) throw timedOut(spec, state)
    await clock.sleep(Math.max(0, Math.min(poll_ms, deadline - clock.now())))
  }
}

/** One poll; a failure a retry may cure (no answer, no quorum right now) is still waiting. */
async function pollOnce<T>(spec: WaitSpec<T>): Promise<WaitStep<T>> {
  try {
    return await spec.poll()
  } catch (e) {
    if (!isTransientError(e)) throw e
    return waiting(`no answer (${describeError(e)})`)
  }
}

function timedOut(spec: WaitSpec<unknown>, state: string): HvlabError {
  const s = Math.round(spec.timeout_ms / 1000)
  return new HvlabError(
    'HVLAB_E_TIMEOUT',
    `gave up waiting for ${spec.what} after ${s} s: ${state}; it may still happen — ${spec.watch} shows it (--timeout-s waits longer)`,
  )
}

/** The options of a command that waits: `--no-wait` and `--timeout-s N`. */
export interface WaitOpts {
  /** false with --no-wait. */
  wait: boolean
  timeoutS: number
}

/** The longest --timeout-s (an hour). */
const TIMEOUT_S_MAX = 3600

/** Adds `--no-wait` and `--timeout-s N` (default `default_s`) to a command. */
export function waitOptions(command: Command, default_s: number): Command {
  return command
    .option('--no-wait', 'return once the request is accepted, without waiting for the outcome')
    .option('--timeout-s <n>', `how long to wait for the outcome, in seconds (exit 1 after it)`, intIn(1, TIMEOUT_S_MAX), default_s)
}
