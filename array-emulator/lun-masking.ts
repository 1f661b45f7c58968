/**
 * LUN masking: which hosts may see a volume. A volume is presented to named hosts; a
 * presentation may also name up to two initiator ids (a Virtual Fibre Channel adapter's
 * WWN A/B pair), and then only I/O from those initiators is allowed. Any other host's
 * I/O is refused. Presentations are persisted atomically.
 */
import { join } from 'node:path'
import { HvlabError } from '../shared/errors.js'
import { readDurableJson, writeDurableJson } from '../shared/durable-json.js'
import { SerialQueue } from '../shared/serial-queue.js'

export const PRESENTATIONS_FILE = 'presentations.json'
export const INITIATORS_PER_HOST_MAX = 2
export const PRESENTATIONS_MAX_DEFAULT = 4096

const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/
const WWN_PATTERN = /^(?:[0-9a-f]{16}|(?:[0-9a-f]{2}:){7}[0-9a-f]{2})$/

export interface Presentation {
  volume: string
  host: string
  /** Normalized WWNs (lowercase, colon-separated); empty = any initiator of the host. */
  initiators: string[]
}

/** Lowercase, colon-separated; throws HVLAB_E_USAGE for anything that is not a WWN. */
export function normalizeWwn(id: string): string {
  const lower = id.toLowerCase()
  if (!WWN_PATTERN.test(lower)) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `initiator id ${JSON.stringify(id.slice(0, 40))} is not a WWN; use 16 hex digits like c0:03:ff:00:00:ff:ff:00`,
    )
  }
  const hex = lower.replaceAll(':', '')
  return hex.match(/../g)!.join(':')
}

export class LunMasking {
  /** volume → host → presentation */
  private readonly byVolume = new Map<string, Map<string, Presentation>>()
  private readonly saves = new SerialQueue()
  /** The write that has not started yet (null: none): a change made now is in its snapshot. */
  private queued_save: Promise<void> | null = null
  private count = 0

  private constructor(
    private readonly path: string | undefined,
    private readonly presentations_max: number,
  ) {}

  /** A table persisted in `dir`. */
  static async open(dir: string, options: { presentations_max?: number } = {}): Promise<LunMasking> {
    const table = new LunMasking(join(dir, PRESENTATIONS_FILE), options.presentations_max ?? PRESENTATIONS_MAX_DEFAULT)
    const raw = await readDurableJson(table.path!)
    if (raw !== undefined) table.load(raw)
    return table
  }

  /** Presents (or re-presents, replacing the initiators) `volume` to `host`. */
  async present(volume: string, host: string, initiators: readonly string[] = []): Promise<Presentation> {
    const p = this.validate(volume, host, initiators)
    const hosts = this.byVolume.get(volume) ?? new Map<string, Presentation>()
    if (!hosts.has(host) && this.count >= this.presentations_max) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `cannot present volume ${volume} to host ${host}: the array already has ${this.presentations_max} presentations (its limit)`,
      )
    }
    if (!hosts.has(host)) this.count++
    hosts.set(host, p)
    this.byVolume.set(volume, hosts)
    await this.save()
    return { ...p, initiators: [...p.initiators] }
  }

  async unpresent(volume: string, host: string): Promise<void> {
    const hosts = this.byVolume.get(volume)
    if (!hosts?.delete(host)) {
      throw new HvlabError('HVLAB_E_NOT_FOUND', `volume ${volume} is not presented to host ${host}; nothing to unpresent`)
    }
    this.count--
    if (hosts.size === 0) this.byVolume.delete(volume)
    await this.save()
  }

  /** Drops every presentation of a removed volume. */
  async forgetVolume(volume: string): Promise<void> {
    const hosts = this.byVolume.get(volume)
    if (!hosts) return
    this.count -= hosts.size
    this.byVolume.delete(volume)
    await this.save()
  }

  presentations(volume?: string): Presentation[] {
    const volumes = volume === undefined ? [...this.byVolume.values()] : [this.byVolume.get(volume) ?? new Map()]
    return volumes.flatMap((hosts) => [...hosts.values()].map((p) => ({ ...p, initiators: [...p.initiators] })))
  }

  /** Throws HVLAB_E_REFUSED unless `host` (through `initiator`, if the presentation names some) may do I/O on `volume`. */
  checkAccess(volume: string, host: string, initiator?: string): void {
    const p = this.byVolume.get(volume)?.get(host)
    if (!p) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `host ${host} may not access volume ${volume}: it is not presented to that host; present it first (lun-present); nothing was read or written`,
      )
    }
    if (p.initiators.length === 0) return
    let id: string | undefined
    try {
      id = initiator === undefined ? undefined : normalizeWwn(initiator)
    } catch {
      id = undefined
    }
    if (id === undefined || !p.initiators.includes(id)) {
      throw new HvlabError(
        'HVLAB_E_REFUSED',
        `host ${host} may access volume ${volume} only through initiator ${p.initiators.join(' or ')}, not ${initiator ?? '(none given)'}; nothing was read or written`,
      )
    }
  }

  private validate(volume: string, host: string, initiators: readonly string[]): Presentation {
    if (!NAME_PATTERN.test(volume)) throw new HvlabError('HVLAB_E_USAGE', `volume name ${JSON.stringify(volume.slice(0, 80))} is invalid`)
    if (!NAME_PATTERN.test(host)) throw new HvlabError('HVLAB_E_USAGE', `host name ${JSON.stringify(host.slice(0, 80))} is invalid`)
    if (initiators.length > INITIATORS_PER_HOST_MAX) {
      throw new HvlabError(
        'HVLAB_E_USAGE',
        `a presentation names at most ${INITIATORS_PER_HOST_MAX} initiator ids (a VFC WWN A/B pair), got ${initiators.length}`,
      )
    }
    const ids = initiators.map(normalizeWwn)
    if (new Set(ids).size !== ids.length)
      throw new HvlabError('HVLAB_E_USAGE', `initiator ids ${ids.join(', ')} repeat; name each WWN once`)
    for (const hosts of this.byVolume.values()) {
      for (const other of hosts.values()) {
        if (other.host === host) continue
        const clash = ids.find((id) => other.initiators.includes(id))
        if (clash) {
          throw new HvlabError(
            'HVLAB_E_USAGE',
            `initiator ${clash} already belongs to host ${other.host} (volume ${other.volume}); a WWN identifies one host`,
          )
        }
      }
    }
    return { volume, host, initiators: ids }
  }

  /**
   * Persists the table. Changes made while a write waits for the one before it ride on it
   * (its snapshot is taken when it starts), so N presentations that arrive together cost
   * about two writes of the file, not N: the file grows with the presentations (3,200 for
   * 200 replicated VMs in a 16-host lab), and one write per change made that quadratic.
   */
  private save(): Promise<void> {
    const path = this.path
    if (path === undefined) return Promise.resolve()
    if (this.queued_save !== null) return this.queued_save
    const save = this.saves.run(() => {
      this.queued_save = null
      return writeDurableJson(path, { format: 1, presentations: this.presentations() })
    })
    this.queued_save = save
    return save
  }

  private load(raw: unknown): void {
    const file = raw as { format?: unknown; presentations?: unknown } | null
    if (!file || file.format !== 1 || !Array.isArray(file.presentations)) {
      throw new HvlabError('HVLAB_E_INTERNAL', `${this.path} is damaged (unknown format); restore it from a backup`)
    }
    for (const entry of file.presentations as Presentation[]) {
      const p = this.validate(String(entry?.volume), String(entry?.host), Array.isArray(entry?.initiators) ? entry.initiators : [])
      const hosts = this.byVolume.get(p.volume) ?? new Map<string, Presentation>()
      if (!hosts.has(p.host)) this.count++
      hosts.set(p.host, p)
      this.byVolume.set(p.volume, hosts)
    }
  }
}
