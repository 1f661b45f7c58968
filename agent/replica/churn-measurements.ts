/**
 * `hvlab replica size` on the host running the VM: for the time asked, each guest write
 * its disk completes (acknowledged, or in doubt: it may be on the disk; a refused one wrote
 * nothing) goes into the VM's ChurnRecorder (churn-recorder.ts) at the host's clock, and
 * at the end the recorder says what each replication frequency needs. The VM need not be
 * replicated: the writes come in through the host's write sink, as Replica's do.
 *
 * The lab's time: the duration asked and the frequencies are the lab's (30 s, 5 min,
 * 15 min), scaled by the topology's timeScale as replication scales them (scaled(), the
 * health thresholds' own), so the cycles cut are the ones the lab's replication would
 * ship, and the bytes a second are real ones on the lab's links.
 *
 * One measurement per VM at a time, at most SIZING_MEASUREMENTS_MAX on a host; each holds
 * one bit per disk block per frequency, whatever the writes. A VM that stops or leaves the
 * host ends its measurement with HVLAB_E_SIZING_INTERRUPTED. The last outcome of each VM
 * stays to be asked for (at most SIZING_ENDED_KEPT).
 */
import { scaled, type Clock } from '../../shared/clock.js'
import { HvlabError, type HvlabCode } from '../../shared/errors.js'
import { everyTick } from '../../shared/periodic-task.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { REPLICATION_FREQUENCIES_MS } from '../../shared/protocol/replica-limits.js'
import { SIZING_DURATION_MS_MAX } from '../../shared/protocol/replica-size-messages.js'
import type { DiskWriteRecord } from '../vm/disk-write-record.js'
import type { DiskWriteOutcome, DiskWritePlace, DiskWriteSink } from '../vm/vm-disk.js'
import { ChurnRecorder } from './churn-recorder.js'

/** Measurements under way on one host at most. */
export const SIZING_MEASUREMENTS_MAX = 16
/** Ended measurements whose outcome is kept. */
export const SIZING_ENDED_KEPT = 64
/** How often the host checks that each measured VM still runs here. */
export const SIZING_CHECK_MS = 1000

export type SizeReply = MessageOf<'replica-size-reply'>

export interface ChurnMeasurementsDeps {
  readonly host: string
  readonly clock: Clock
  readonly time_scale: number
  /** The VMs running here now. */
  running(): readonly string[]
  /** The VM's disk as its writer writes it here; undefined: none attached. */
  diskOf(vm: string): { readonly block_size_bytes: number; readonly blocks: number; readonly disks?: number } | undefined
}

interface Measurement {
  readonly vm: string
  readonly duration_ms: number
  readonly measured_ms: number
  readonly started_ms: number
  readonly block_size_bytes: number
  /** Blocks of each of the VM's disks: a data disk's writes count in the one block space (disk-set.ts). */
  readonly blocks_per_disk: number
  readonly recorder: ChurnRecorder
  cancelEnd: () => void
}

export class ChurnMeasurements implements DiskWriteSink {
  private readonly under_way = new Map<string, Measurement>()
  private readonly ended = new Map<string, SizeReply>()
  private cancelCheck: (() => void) | undefined

  constructor(private readonly d: ChurnMeasurementsDeps) {}

  start(): void {
    this.cancelCheck = everyTick(this.d.clock, SIZING_CHECK_MS, () => this.check())
  }

  stop(): void {
    this.cancelCheck?.()
    for (const m of this.under_way.values()) m.cancelEnd()
    this.under_way.clear()
  }

  /** Begins measuring `vm` for `duration_ms` of the lab's time; throws a clear HvlabError when it cannot. */
  begin(vm: string, duration_ms: number): SizeReply {
    if (!Number.isSafeInteger(duration_ms) || duration_ms < 1 || duration_ms > SIZING_DURATION_MS_MAX)
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `a churn measurement lasts 1 ms to ${SIZING_DURATION_MS_MAX / 3600_000} h, got ${duration_ms} ms`,
      )
    if (this.under_way.has(vm))
      throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is being measured on ${this.d.host} already; wait for that measurement to end`)
    if (this.under_way.size >= SIZING_MEASUREMENTS_MAX)
      throw new HvlabError(
        'HVLAB_E_BACKPRESSURE',
        `${this.d.host} measures ${SIZING_MEASUREMENTS_MAX} VMs already; try again once one ends`,
      )
    if (!this.d.running().includes(vm)) throw new HvlabError('HVLAB_E_STATE', `vm ${vm} does not run on ${this.d.host}`)
    const disk = this.d.diskOf(vm)
    if (disk === undefined)
      throw new HvlabError('HVLAB_E_STATE', `vm ${vm} has no disk attached on ${this.d.host}: it writes nothing to measure`)
    const measured_ms = scaled(duration_ms, this.d.time_scale)
    const started_ms = this.d.clock.now()
    const recorder = new ChurnRecorder({
      start_ms: started_ms,
      measured_ms,
      block_size_bytes: disk.block_size_bytes,
      disk_blocks: disk.blocks,
      frequencies_ms: REPLICATION_FREQUENCIES_MS.map((f) => scaled(f, this.d.time_scale)),
    })
    const m: Measurement = {
      vm,
      duration_ms,
      measured_ms,
      started_ms,
      block_size_bytes: disk.block_size_bytes,
      blocks_per_disk: disk.blocks / (disk.disks ?? 1),
      recorder,
      cancelEnd: () => {},
    }
    m.cancelEnd = this.d.clock.setTimer(measured_ms, () => this.end(m, null))
    this.ended.delete(vm)
    this.under_way.set(vm, m)
    return this.reply(m, 'measuring', null)
  }

  /** How the measurement of `vm` stands (the last one, once ended). */
  status(vm: string): SizeReply {
    const m = this.under_way.get(vm)
    if (m !== undefined) return this.reply(m, 'measuring', null)
    const e = this.ended.get(vm)
    if (e === undefined) throw new HvlabError('HVLAB_E_NOT_FOUND', `${this.d.host} has no churn measurement of vm ${vm}`)
    return e
  }

  issued(): void {}

  completed(r: DiskWriteRecord, outcome: DiskWriteOutcome, _code?: HvlabCode | null, to?: DiskWritePlace): void {
    if (outcome === 'refused') return
    const m = this.under_way.get(r.vm)
    if (m === undefined) return
    const now = this.d.clock.now()
    if (now - m.started_ms >= m.measured_ms) return this.end(m, null) // its end is due (the timer is late): a later write is not in it
    m.recorder.record((to?.disk ?? 0) * m.blocks_per_disk + r.block, now) // the VM's disks as one block space (disk-set.ts)
  }

  /** Ends the measurement of every VM that no longer runs here (public for tests). */
  check(): void {
    const running = new Set(this.d.running())
    for (const m of this.under_way.values())
      if (!running.has(m.vm))
        this.end(m, {
          code: 'HVLAB_E_SIZING_INTERRUPTED',
          error: `vm ${m.vm} stopped or left ${this.d.host} during its churn measurement`,
        })
  }

  private end(m: Measurement, why: { code: HvlabCode; error: string } | null): void {
    if (this.under_way.get(m.vm) !== m) return
    m.cancelEnd()
    this.under_way.delete(m.vm)
    this.ended.set(m.vm, this.reply(m, why === null ? 'done' : 'interrupted', why))
    if (this.ended.size > SIZING_ENDED_KEPT) this.ended.delete(this.ended.keys().next().value as string)
  }

  private reply(m: Measurement, state: SizeReply['state'], why: { code: HvlabCode; error: string } | null): SizeReply {
    const elapsed_ms = Math.round(Math.min(m.measured_ms, Math.max(0, this.d.clock.now() - m.started_ms)))
    const frequencies =
      state !== 'done'
        ? []
        : m.recorder.result().map((f, i) => ({
            ...f,
            frequency_ms: REPLICATION_FREQUENCIES_MS[i]!,
            cycle_ms: f.frequency_ms,
          }))
    return {
      t: 'replica-size-reply',
      vm: m.vm,
      host: this.d.host,
      state,
      time_scale: this.d.time_scale,
      duration_ms: m.duration_ms,
      measured_ms: m.measured_ms,
      elapsed_ms: state === 'done' ? m.measured_ms : elapsed_ms,
      block_size_bytes: m.block_size_bytes,
      writes: m.recorder.writes,
      frequencies,
      error: why?.error ?? null,
      error_code: why?.code ?? null,
    }
  }
}
