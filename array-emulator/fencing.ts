/**
 * Fencing: each volume remembers the newest reservation epoch a writer has presented
 * (like a SCSI-3 persistent reservation key). A write with an older epoch comes from a
 * fenced (zombie) owner and is refused; a newer epoch raises the reservation. The table
 * is persisted atomically before a raise is acknowledged, so a restarted array never
 * accepts an epoch it had already fenced.
 */
import { join } from 'node:path'
import { HvlabError } from '../shared/errors.js'
import { readDurableJson, writeDurableJson } from '../shared/durable-json.js'
import { SerialQueue } from '../shared/serial-queue.js'

export const RESERVATIONS_FILE = 'reservations.json'
export const FENCED_VOLUMES_MAX_DEFAULT = 4096

export interface Reservation {
  epoch: number
  /** The host that first presented this epoch (for error messages and status). */
  host: string
}

export type FenceDecision = 'accept' | 'raise' | 'refuse'

/** The pure rule: older refused, equal accepted, newer raises the reservation. */
export function fenceDecision(current: Reservation | undefined, epoch: number): FenceDecision {
  if (!Number.isSafeInteger(epoch) || epoch < 0)
    throw new HvlabError('HVLAB_E_REFUSED', `reservation epoch ${epoch} is not a non-negative integer`)
  if (current === undefined || epoch > current.epoch) return 'raise'
  if (epoch === current.epoch) return 'accept'
  return 'refuse'
}

interface ReservationsFile {
  format: 1
  volumes: Record<string, Reservation>
}

export class FencingTable {
  private readonly reservations = new Map<string, Reservation>()
  private readonly saves = new SerialQueue()
  /** The newest save; an accepted write waits for it so no ack outruns the epoch it relies on. */
  private lastSave: Promise<void> = Promise.resolve()

  private constructor(
    private readonly path: string,
    private readonly volumes_max: number,
  ) {}

  static async open(dir: string, options: { volumes_max?: number } = {}): Promise<FencingTable> {
    const table = new FencingTable(join(dir, RESERVATIONS_FILE), options.volumes_max ?? FENCED_VOLUMES_MAX_DEFAULT)
    const raw = await readDurableJson(table.path)
    if (raw !== undefined) table.load(raw)
    return table
  }

  current(volume: string): Reservation | undefined {
    const r = this.reservations.get(volume)
    return r ? { ...r } : undefined
  }

  /**
   * Resolves when a write by `host` with `epoch` may go ahead on `volume` (after any
   * raise it causes is durable); throws HVLAB_E_FENCED (an HVLAB_E_REFUSED) for a fenced writer.
   */
  async admitWrite(volume: string, host: string, epoch: number): Promise<void> {
    const current = this.reservations.get(volume)
    const decision = fenceDecision(current, epoch)
    if (decision === 'refuse' && current) {
      throw new HvlabError(
        'HVLAB_E_FENCED',
        `write to volume ${volume} by host ${host} refused: it carries reservation epoch ${epoch} but the volume is reserved at epoch ${current.epoch} (host ${current.host}); this host has been fenced — rejoin the cluster to get the current epoch; nothing was written`,
      )
    }
    if (decision === 'raise') {
      if (!current && this.reservations.size >= this.volumes_max) {
        throw new HvlabError('HVLAB_E_REFUSED', `cannot reserve volume ${volume}: the fencing table is full (${this.volumes_max} volumes)`)
      }
      this.reservations.set(volume, { epoch, host })
      this.lastSave = this.saves.run(() => this.save())
    }
    await this.lastSave
  }

  /** Forgets a removed volume's reservation. */
  async forget(volume: string): Promise<void> {
    if (!this.reservations.delete(volume)) return
    this.lastSave = this.saves.run(() => this.save())
    await this.lastSave
  }

  private save(): Promise<void> {
    const file: ReservationsFile = { format: 1, volumes: Object.fromEntries(this.reservations) }
    return writeDurableJson(this.path, file)
  }

  private load(raw: unknown): void {
    const file = raw as Partial<ReservationsFile> | null
    if (!file || file.format !== 1 || typeof file.volumes !== 'object' || file.volumes === null) {
      throw new HvlabError(
        'HVLAB_E_INTERNAL',
        `${this.path} is damaged (unknown format); restore it from a backup — without it fenced hosts could write again`,
      )
    }
    for (const [volume, r] of Object.entries(file.volumes)) {
      if (!Number.isSafeInteger(r?.epoch) || r.epoch < 0 || typeof r.host !== 'string') {
        throw new HvlabError(
          'HVLAB_E_INTERNAL',
          `${this.path} is damaged (volume ${volume} has an invalid reservation); restore it from a backup`,
        )
      }
      this.reservations.set(volume, { epoch: r.epoch, host: r.host })
    }
  }
}
