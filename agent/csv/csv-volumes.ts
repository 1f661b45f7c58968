/**
 * This host's CsvVolume for each CSV (its I/O path to it), made on first use with the
 * host's paths, clock, events and limits, and their states (`hvlab csv state`, GET /status).
 */
import type { MessageOf } from '../../shared/protocol/messages.js'
import { isUnreachable } from '../clx/array-admin.js'
import type { CsvHostContext } from './csv-host-context.js'
import { coordinatorPath, directPath } from './csv-io-paths.js'
import type { CsvRegionMetadata } from './csv-region-metadata.js'
import { CsvVolume } from './csv-volume.js'

export class CsvVolumes {
  private readonly volumes = new Map<string, CsvVolume>()

  constructor(
    private readonly ctx: CsvHostContext,
    private readonly metadata: CsvRegionMetadata,
  ) {}

  /** The I/O path of CSV `name` on this host; throws HVLAB_E_NOT_FOUND if there is no such CSV. */
  volume(name: string): CsvVolume {
    this.ctx.mustExist(name)
    let v = this.volumes.get(name)
    if (v) return v
    v = this.create(name)
    this.volumes.set(name, v)
    return v
  }

  /** The state of every CSV's volume on this host. */
  states(): MessageOf<'csv-state-reply'> {
    const { p, db } = this.ctx
    return { t: 'csv-state-reply', host: p.name, volumes: [...db.all().csvs.keys()].map((n) => this.volume(n).state()) }
  }

  private create(name: string): CsvVolume {
    const { p, db } = this.ctx
    return new CsvVolume({
      node: p.name,
      csv: name,
      entry: () => db.entry(name),
      direct: directPath(this.ctx, name),
      coordinator: coordinatorPath(this.ctx, this.metadata, name),
      unreachable: isUnreachable,
      now: () => p.clock.now(),
      sleep: (ms) => new Promise((r) => p.clock.setTimer(ms, r)),
      emitEvent: (kind, details) => p.emitEvent(kind, details),
      awaitRegion: (region, present) => db.until(`region ${region} of CSV ${name}`, () => db.entry(name)?.regions.has(region) === present),
      retry_delay_ms: 500,
      retry_attempts_max: 30,
      redirect_in_flight_max: 8,
      redirect_waiting_max: 64,
      served_in_flight_max: 32,
    })
  }
}
