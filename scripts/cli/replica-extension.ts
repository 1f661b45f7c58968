/**
 * Extended replication (seed 002): the replica server holding a VM's replica forwards it to a
 * third server every 5 or 15 minutes. `hvlab replica extend VM --to SERVER` sets it on a
 * replicated VM, `replica enable VM --to SERVER --extend-to THIRD` with the replication.
 */
import { InvalidArgumentError } from 'commander'
import { EXTENDED_FREQUENCIES_MS } from '../../shared/protocol/replica-limits.js'
import type { Extension } from '../../shared/protocol/replica-messages.js'
import { HOST_REQUEST_TIMEOUT_MS } from './cluster-client.js'
import type { ControlClient } from './control-client.js'

const EXTENDED_FREQUENCY_WORDS: Record<string, (typeof EXTENDED_FREQUENCIES_MS)[number]> = { '5m': 300_000, '15m': 900_000 }

/** `--frequency 5m|15m` of extended replication. */
export const extendedFrequency = (v: string): (typeof EXTENDED_FREQUENCIES_MS)[number] => {
  const f = EXTENDED_FREQUENCY_WORDS[v]
  if (f === undefined) throw new InvalidArgumentError('5m or 15m (the frequencies extended replication offers)')
  return f
}

/** Has replica server `from` forward `vm`'s replica as `extension` (null: no longer); what it now does, in words. */
export async function forwardReplica(client: ControlClient, from: string, vm: string, extension: Extension | null): Promise<string> {
  await client.request(from, { t: 'replica-extend-request', vm, extension }, 'ok', HOST_REQUEST_TIMEOUT_MS)
  return extension === null
    ? `${from} no longer forwards vm ${vm}'s replica`
    : `${from} forwards vm ${vm}'s replica to ${extension.to} every ${extension.frequency_ms / 60_000} min (after a first resync); \`hvlab replica status ${vm}\` shows it`
}
