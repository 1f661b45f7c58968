/**
 * Whom a replica server takes replication from (Hyper-V's "Enable this computer as a
 * Replica server", seed 002: authorised primary servers, or any authenticated server),
 * kept in the server's data dir so a restart keeps it. Until `hvlab replica server enable`
 * it takes none.
 */
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { z } from 'zod'
import { HvlabError } from '../../shared/errors.js'
import { readDurableJson, writeDurableJson } from '../../shared/durable-json.js'
import { field } from '../../shared/protocol/define.js'
import { REPLICA_ALLOW_MAX } from '../../shared/protocol/replica-messages.js'

const settingsSchema = z.strictObject({
  format: z.literal(1),
  enabled: z.boolean(),
  allow_any: z.boolean(),
  allow: field.list(field.name(), REPLICA_ALLOW_MAX),
})
export type ReplicaServerSettings = Omit<z.infer<typeof settingsSchema>, 'format'>

const DISABLED: ReplicaServerSettings = { enabled: false, allow_any: false, allow: [] }

export class ReplicaServerAuthorization {
  private constructor(
    private readonly file: string,
    private settings_: ReplicaServerSettings,
  ) {}

  static async open(dir: string): Promise<ReplicaServerAuthorization> {
    const file = join(dir, 'replica-server.json')
    const raw = await readDurableJson(file)
    if (raw === undefined) return new ReplicaServerAuthorization(file, DISABLED)
    const parsed = settingsSchema.safeParse(raw)
    if (!parsed.success)
      throw new HvlabError(
        'HVLAB_E_STATE',
        `${file} is not a replica server's settings; remove it and run \`hvlab replica server enable\` again`,
      )
    const { format: _format, ...settings } = parsed.data
    return new ReplicaServerAuthorization(file, settings)
  }

  get settings(): ReplicaServerSettings {
    return this.settings_
  }

  /** `hvlab replica server enable`: durable before it answers. */
  async enable(allow_any: boolean, allow: readonly string[]): Promise<void> {
    const settings = { enabled: true, allow_any, allow: [...new Set(allow)].sort() }
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 })
    await writeDurableJson(this.file, { format: 1, ...settings })
    this.settings_ = settings
  }

  /** Throws HVLAB_E_REPLICA_NOT_ALLOWED unless `primary` may replicate here (any of its VMs). */
  check(server: string, primary: string, _vm?: string): void {
    const s = this.settings_
    if (!s.enabled)
      throw new HvlabError(
        'HVLAB_E_REPLICA_NOT_ALLOWED',
        `this host is not a replica server yet; enable it: hvlab replica server enable ${server} --allow ${primary}`,
      )
    if (!s.allow_any && !s.allow.includes(primary))
      throw new HvlabError(
        'HVLAB_E_REPLICA_NOT_ALLOWED',
        `this replica server does not take replication from ${primary} (it allows ${s.allow.join(', ') || 'none'}); add it: hvlab replica server enable ${server} --allow ${[...s.allow, primary].join(',')}`,
      )
  }
}
