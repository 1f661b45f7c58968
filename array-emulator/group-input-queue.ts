/**
 * One Remote Copy group's input queue: inputs run one at a time in arrival order (each
 * step's effects finish before the next input runs), and the inputs waiting or running
 * are bounded (`rc_group_inputs_queued_max`, DESIGN principle 9). Hosts and the operator
 * ('caller') and the partner array ('partner') each have that many places, so a flood of
 * host writes cannot crowd out the partner's acks, nor a misbehaving partner the hosts.
 * Beyond its bound an input is refused at once with HVLAB_E_BACKPRESSURE, and the caller
 * answers whoever sent it. The array's own inputs ('internal': link up/down, timers,
 * resync permits, the shutdown) are never refused; there are few by construction.
 */
import { HvlabError } from '../shared/errors.js'
import { SerialQueue } from '../shared/serial-queue.js'

export type InputOrigin = 'caller' | 'partner' | 'internal'

const FROM: Record<Exclude<InputOrigin, 'internal'>, string> = { caller: 'hosts and the operator', partner: 'its partner array' }

export class GroupInputQueue {
  private readonly serial = new SerialQueue()
  private readonly queued = { caller: 0, partner: 0 }

  constructor(
    readonly group: string,
    readonly inputs_queued_max: number,
  ) {
    if (!Number.isSafeInteger(inputs_queued_max) || inputs_queued_max < 1) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `remote copy group ${group}: inputs_queued_max must be a positive integer, got ${String(inputs_queued_max)}`,
      )
    }
  }

  /** Inputs of `origin` waiting or running now. */
  queuedFrom(origin: Exclude<InputOrigin, 'internal'>): number {
    return this.queued[origin]
  }

  /** Runs `job` after every input queued before it; rejects at once when `origin` is at its bound. */
  run<T>(origin: InputOrigin, job: () => Promise<T>): Promise<T> {
    if (origin === 'internal') return this.serial.run(job)
    if (this.queued[origin] >= this.inputs_queued_max) {
      return Promise.reject(
        new HvlabError(
          'HVLAB_E_BACKPRESSURE',
          `remote copy group ${this.group} has ${this.queued[origin]} inputs from ${FROM[origin]} waiting (its limit, rc_group_inputs_queued_max); retry shortly`,
        ),
      )
    }
    this.queued[origin]++
    return this.serial.run(async () => {
      try {
        return await job()
      } finally {
        this.queued[origin]--
      }
    })
  }
}
