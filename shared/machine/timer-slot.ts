/**
 * One timer at a time, for a machine that keeps a single timer (the cluster machines'
 * tick): arming it again cancels the one before, and `cancel` disarms it for good until
 * it is armed again.
 */
export class TimerSlot {
  private cancelArmed: (() => void) | undefined

  /** `arm(at_ms, fn)` calls `fn` at `at_ms` and returns a cancel function. */
  constructor(private readonly arm: (at_ms: number, fn: () => void) => () => void) {}

  set(at_ms: number, fn: () => void): void {
    this.cancel()
    this.cancelArmed = this.arm(at_ms, fn)
  }

  cancel(): void {
    this.cancelArmed?.()
    this.cancelArmed = undefined
  }
}
