/**
 * At-least-once notices from a lab process to its controller (timeline events, VM
 * locations) over connections that can die with data unread: a process paused (SIGSTOP)
 * past the controller's dead_after_ms finds, on waking, a connection the controller has
 * already cut; what it writes there before it reads the close is lost. So the process
 * numbers each notice and keeps the newest (NoticeOutbox); on every registration the
 * controller answers the last number it took from that process (NoticeIntake, per pid),
 * and the process sends again everything after it. The controller drops a number it
 * already took, so nothing arrives twice.
 */

export class NoticeOutbox<T extends object> {
  private sent = 0
  private readonly recent: (T & { n: number })[] = []

  /** Keeps at most `max` notices; the oldest go first. */
  constructor(private readonly max: number) {}

  /** Numbers a notice (from 1, rising by one) and keeps it. */
  add(notice: T): T & { n: number } {
    const numbered = { ...notice, n: ++this.sent }
    this.recent.push(numbered)
    if (this.recent.length > this.max) this.recent.splice(0, this.recent.length - this.max)
    return numbered
  }

  /** The kept notices numbered after `through`, in order: what the controller has not taken. */
  after(through: number): (T & { n: number })[] {
    return this.recent.filter((x) => x.n > through)
  }
}

export class NoticeIntake {
  private pid: number | null = null
  private through_ = 0

  /** A registration from process `pid`: the last number taken from it (0 for a new process). */
  register(pid: number): number {
    if (pid !== this.pid) {
      this.pid = pid
      this.through_ = 0
    }
    return this.through_
  }

  /** Whether a notice numbered `n` is new (and take it); an unnumbered one always is. */
  fresh(n: number | undefined): boolean {
    if (n === undefined) return true
    if (n <= this.through_) return false
    this.through_ = n
    return true
  }
}
