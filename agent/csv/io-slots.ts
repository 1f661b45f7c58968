/**
 * A bound on I/O in flight: at most `in_flight_max` run at once, at most `waiting_max`
 * wait for a slot, and anything beyond that is refused at once with a clear error.
 */
import { HvlabError } from '../../shared/errors.js'

export class IoSlots {
  private running = 0
  private readonly waiting: (() => void)[] = []

  constructor(
    private readonly what: string,
    readonly in_flight_max: number,
    readonly waiting_max: number,
  ) {
    if (!(in_flight_max >= 1) || !(waiting_max >= 0))
      throw new HvlabError('HVLAB_E_USAGE', `${what}: in_flight_max must be ≥ 1 and waiting_max ≥ 0`)
  }

  get inFlight(): number {
    return this.running
  }
  get queued(): number {
    return this.waiting.length
  }

  /** Runs `fn` in a slot. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.in_flight_max) {
      if (this.waiting.length >= this.waiting_max) {
        throw new HvlabError(
          'HVLAB_E_REFUSED',
          `${this.what}: ${this.running} I/Os in flight and ${this.waiting.length} waiting (the limit); retry shortly`,
        )
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.running++
    }
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next)
        next() // the slot passes straight to the next waiter
      else this.running--
    }
  }
}
