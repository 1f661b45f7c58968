/**
 * The effect vocabulary every state machine of the lab shares. A machine's `step` returns
 * effects: plain data, each with a `kind` in kebab-case, that a shell (or the simulator)
 * carries out in order through a MachineDriver (driver.ts). The four kinds below mean the
 * same thing in every machine; a machine adds its own kinds (`start-vm`, `copy-round`,
 * `write-local` …) next to them, never a second meaning for one of these.
 *
 * - `send`: a message to a peer, best effort (the protocols resend what matters). A send
 *   marked `liveness` depends on no write (a heartbeat, a lease grant): the driver sends it
 *   as the machine steps, never behind a `persist` of an earlier step (an fsync under load
 *   must not silence a host), so it may overtake earlier sends.
 * - `set-timer`: step the machine with `token` at `at_ms` on the machine's clock.
 * - `persist`: write `record` durably, replacing the one before; no effect after it runs
 *   until it is done.
 * - `emit`: an event for the timeline (its type is the machine's event type).
 */

/** What every effect has: its kind, in kebab-case. */
export interface MachineEffect {
  readonly kind: string
}

export interface SendEffect<M> {
  readonly kind: 'send'
  readonly to: string
  readonly message: M
  /** Depends on no write: sent at once (see above). */
  readonly liveness?: true
}

/** A machine with one timer only (`T` undefined) leaves the token out: the timer's input says which. */
export type SetTimerEffect<T = string> = {
  readonly kind: 'set-timer'
  readonly at_ms: number
} & ([T] extends [undefined] ? { readonly token?: undefined } : { readonly token: T })

export interface PersistEffect<R> {
  readonly kind: 'persist'
  readonly record: R
}

export interface EmitEffect<Ev> {
  readonly kind: 'emit'
  readonly event: Ev
}
