/**
 * One node's view of one Cluster Shared Volume: the I/O path a VM disk writer uses.
 *
 *   write({ region, block, blocks, data, epoch }) → { path, via }
 *   read({ region, block, blocks })               → { data, path, via }
 *   allocateRegion(vm, size_bytes) / releaseRegion(vm)   (through the coordinator node)
 *
 * `block` counts blocks inside the region (a VM disk's own block numbers). An I/O goes
 * DIRECT to the array while this node reaches it; when the array is unreachable the node
 * switches to Redirected (event csv.io-redirected) and sends the I/O over the cluster
 * network to the CSV's coordinator node, which does it on its behalf with the writer's
 * epoch (so fencing still applies). `probe()` tries the direct path again and switches
 * back (csv.io-direct). Redirected I/O is bounded in flight; a coordinator that dies in
 * the middle is retried on its successor for a bounded number of attempts.
 */
import { HvlabError, describeError } from '../../shared/errors.js'
import type { CsvNodeState } from '../../shared/protocol/csv-messages.js'
import type { EmitEvent } from '../../shared/timeline/events.js'
import { blockCount, type CsvEntry, type RegionRecord } from './csv-record.js'
import { initialPathState, stepPathState, type CsvPathState } from './csv-path-state.js'
import { IoSlots } from './io-slots.js'
import { volumeBlock } from './region-allocation.js'

export type IoPath = 'direct' | 'redirected'

export interface CsvWrite {
  region: string
  block: number
  blocks: number
  data: Uint8Array
  /** The writer's cluster epoch (its reservation on the array). */
  epoch: number
}
export interface CsvRead {
  region: string
  block: number
  blocks: number
}

/** This node's own path to the array. Rejects with HvlabError; `unreachable(e)` tells a lost path from a refusal. */
export interface DirectPath {
  write(volume: string, block: number, data: Uint8Array, epoch: number): Promise<void>
  read(volume: string, block: number, blocks: number): Promise<Uint8Array>
}

/** The cluster network to the CSV's coordinator node. */
export interface CoordinatorPath {
  write(owner: string, r: Omit<CsvWrite, 'data'>, data: Uint8Array): Promise<void>
  read(owner: string, r: CsvRead): Promise<Uint8Array>
  /** Allocate (size_bytes given) or release (null) a region on the coordinator node; the committed allocation. */
  region(owner: string, region: string, size_bytes: number | null): Promise<RegionRecord | null>
}

export interface CsvVolumeDeps {
  node: string
  csv: string
  /** The CSV as this node's copy of the cluster database has it now. */
  entry(): CsvEntry | undefined
  direct: DirectPath
  coordinator: CoordinatorPath
  /** Did this error mean "could not reach" (rather than "was refused")? */
  unreachable(e: unknown): boolean
  now(): number
  sleep(ms: number): Promise<void>
  emitEvent: EmitEvent
  /** Resolves once this node's database shows the region allocated (true) or gone (false). */
  awaitRegion(region: string, present: boolean): Promise<void>
  retry_delay_ms: number
  /** How many times a redirected I/O is retried while the coordinator node is unreachable (it may be failing over). */
  retry_attempts_max: number
  redirect_in_flight_max: number
  redirect_waiting_max: number
  served_in_flight_max: number
}

export class CsvVolume {
  private path: CsvPathState
  private bytes_direct = 0
  private bytes_redirected = 0
  private bytes_served = 0
  private readonly redirectSlots: IoSlots
  private readonly serveSlots: IoSlots

  constructor(private readonly d: CsvVolumeDeps) {
    this.path = initialPathState(d.now())
    this.redirectSlots = new IoSlots(`redirected I/O of ${d.node} to CSV ${d.csv}`, d.redirect_in_flight_max, d.redirect_waiting_max)
    this.serveSlots = new IoSlots(`I/O that coordinator node ${d.node} does for others on CSV ${d.csv}`, d.served_in_flight_max, 0)
  }

  get mode(): CsvPathState['mode'] {
    return this.path.mode
  }

  state(): CsvNodeState {
    const p = this.path
    return {
      csv: this.d.csv,
      mode: p.mode,
      state_info: p.state_info,
      reason: p.reason,
      detail: p.detail.slice(0, 512),
      since_ms: p.since_ms,
      bytes_direct: this.bytes_direct,
      bytes_redirected: this.bytes_redirected,
      bytes_served: this.bytes_served,
    }
  }

  async write(w: CsvWrite): Promise<{ path: IoPath; via: string | null }> {
    const { entry, start } = this.locate(w, 'write')
    if (w.data.length !== w.blocks * entry.block_size_bytes) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `write to CSV ${this.d.csv} region ${w.region}: ${w.data.length} bytes of data for ${w.blocks} blocks of ${entry.block_size_bytes} bytes; nothing was written`,
      )
    }
    return this.route(
      async () => {
        await this.d.direct.write(entry.volume, start, w.data, w.epoch)
        this.bytes_direct += w.data.length
      },
      async (owner) => {
        await this.d.coordinator.write(owner, { region: w.region, block: w.block, blocks: w.blocks, epoch: w.epoch }, w.data)
        this.bytes_redirected += w.data.length
      },
    )
  }

  async read(r: CsvRead): Promise<{ data: Uint8Array; path: IoPath; via: string | null }> {
    const { entry, start } = this.locate(r, 'read')
    let data: Uint8Array = new Uint8Array(0)
    const how = await this.route(
      async () => {
        data = await this.d.direct.read(entry.volume, start, r.blocks)
      },
      async (owner) => {
        data = await this.d.coordinator.read(owner, r)
      },
    )
    if (data.length !== r.blocks * entry.block_size_bytes)
      throw new HvlabError('HVLAB_E_PROTOCOL', `read of CSV ${this.d.csv} returned ${data.length} bytes for ${r.blocks} blocks`)
    return { data, ...how }
  }

  /** Allocates the region of `vm` (through the coordinator node); resolves once this node sees it. */
  async allocateRegion(vm: string, size_bytes: number): Promise<RegionRecord> {
    const r = await this.withCoordinator((owner) => this.d.coordinator.region(owner, vm, size_bytes))
    if (r === null)
      throw new HvlabError('HVLAB_E_PROTOCOL', `the coordinator node of CSV ${this.d.csv} released instead of allocating region ${vm}`)
    await this.d.awaitRegion(vm, true)
    return r
  }

  async releaseRegion(vm: string): Promise<void> {
    await this.withCoordinator((owner) => this.d.coordinator.region(owner, vm, null))
    await this.d.awaitRegion(vm, false)
  }

  /** While Redirected: try the direct path (a one-block read) and switch back if it works. */
  async probe(): Promise<void> {
    if (this.path.mode === 'Redirected') await this.checkDirect()
  }

  /**
   * Tries the direct path now (a one-block read), whatever the mode, and records what it
   * found: whether this node reaches the array itself, and the error if not.
   */
  async checkDirect(): Promise<{ direct: boolean; detail: string }> {
    const entry = this.d.entry()
    if (entry === undefined) return { direct: false, detail: `CSV ${this.d.csv} is not in ${this.d.node}'s copy of the cluster database` }
    try {
      await this.d.direct.read(entry.volume, 0, 1)
      this.feed({ kind: 'direct-ok' })
      return { direct: true, detail: '' }
    } catch (e) {
      const detail = describeError(e)
      if (this.d.unreachable(e)) this.feed({ kind: 'direct-unreachable', detail })
      return { direct: false, detail }
    }
  }

  /** As coordinator node: a write another node redirected here; done on this node's direct path only. */
  serveWrite(from: string, w: CsvWrite): Promise<void> {
    return this.serveSlots.run(async () => {
      const { entry, start } = this.locate(w, `write redirected by ${from}`)
      if (w.data.length !== w.blocks * entry.block_size_bytes)
        throw new HvlabError('HVLAB_E_PROTOCOL', `${from} redirected ${w.data.length} bytes for ${w.blocks} blocks`)
      await this.direct(() => this.d.direct.write(entry.volume, start, w.data, w.epoch), from)
      this.bytes_served += w.data.length
    })
  }

  serveRead(from: string, r: CsvRead): Promise<Uint8Array> {
    return this.serveSlots.run(async () => {
      const { entry, start } = this.locate(r, `read redirected by ${from}`)
      let data: Uint8Array = new Uint8Array(0)
      await this.direct(async () => void (data = await this.d.direct.read(entry.volume, start, r.blocks)), from)
      this.bytes_served += data.length
      return data
    })
  }

  // ---------------------------------------------------------------------------

  private locate(r: CsvRead, what: string): { entry: CsvEntry; region: RegionRecord; start: number } {
    const entry = this.d.entry()
    if (entry === undefined)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `CSV ${this.d.csv} does not exist (or ${this.d.node} has not seen it yet); \`hvlab csv list\` shows the CSVs`,
      )
    const region = entry.regions.get(r.region)
    if (region === undefined)
      throw new HvlabError(
        'HVLAB_E_NOT_FOUND',
        `CSV ${this.d.csv} has no region ${r.region}; allocate it first (\`hvlab csv allocate ${this.d.csv} --region ${r.region} --size-mib N\`)`,
      )
    const start = volumeBlock(region, r.block, r.blocks, `${what} of CSV ${this.d.csv} region ${r.region}`)
    if (start + r.blocks > blockCount(entry))
      throw new HvlabError('HVLAB_E_INTERNAL', `region ${r.region} of CSV ${this.d.csv} leaves the volume; its record is damaged`)
    return { entry, region, start }
  }

  /** Direct I/O that records what it found about the path. */
  private async direct(io: () => Promise<void>, forWhom?: string): Promise<void> {
    try {
      await io()
    } catch (e) {
      if (!this.d.unreachable(e)) throw e
      this.feed({ kind: 'direct-unreachable', detail: describeError(e) })
      if (forWhom !== undefined)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `coordinator node ${this.d.node} of CSV ${this.d.csv} has no path to the array either (${describeError(e)}); move the coordinator with \`hvlab csv move ${this.d.csv} --to HOST\``,
        )
      throw e
    }
    this.feed({ kind: 'direct-ok' })
  }

  private async route(
    direct: () => Promise<void>,
    redirected: (owner: string) => Promise<void>,
  ): Promise<{ path: IoPath; via: string | null }> {
    if (this.path.mode === 'Direct') {
      try {
        await this.direct(direct)
        return { path: 'direct', via: null }
      } catch (e) {
        if (!this.d.unreachable(e)) throw e
      }
    }
    return this.redirectSlots.run(() =>
      this.withCoordinator(async (owner) => {
        if (owner === this.d.node) {
          // This node coordinates the CSV itself: nobody to redirect to, only its own path.
          await this.direct(direct, this.d.node)
          return { path: 'direct' as const, via: null }
        }
        await redirected(owner)
        return { path: 'redirected' as const, via: owner }
      }),
    )
  }

  /** Runs `fn` on the current coordinator node, retrying while it cannot be reached (it may be failing over). */
  private async withCoordinator<T>(fn: (owner: string) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const entry = this.d.entry()
      if (entry === undefined)
        throw new HvlabError('HVLAB_E_NOT_FOUND', `CSV ${this.d.csv} does not exist (or ${this.d.node} has not seen it yet)`)
      try {
        return await fn(entry.owner)
      } catch (e) {
        if (!this.d.unreachable(e) || attempt >= this.d.retry_attempts_max) {
          if (this.d.unreachable(e))
            throw new HvlabError(
              'HVLAB_E_TIMEOUT',
              `CSV ${this.d.csv}: coordinator node ${entry.owner} did not answer after ${attempt + 1} attempts (${describeError(e)}); \`hvlab csv list\` shows the coordinator`,
            )
          throw e
        }
        await this.d.sleep(this.d.retry_delay_ms)
      }
    }
  }

  private feed(input: Parameters<typeof stepPathState>[1]): void {
    const r = stepPathState(this.path, input, this.d.now(), { csv: this.d.csv, node: this.d.node })
    this.path = r.state
    if (r.event) this.d.emitEvent(r.event.kind, r.event.details)
  }
}
