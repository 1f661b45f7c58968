/**
 * `hvlab csv remove NAME`: removes a Cluster Shared Volume that holds no VM disk (no
 * region). Its coordinator node removes the record from the cluster database, then its
 * volume csv-NAME — made for it by `csv create` — is unpresented from every host and
 * removed from its array (agent/csv/csv-removal.ts). When the array cannot do that, the
 * CSV is gone all the same, the volume stays, and the command exits 1 saying how to remove it.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { currentIo, setExitCode } from './cli-io.js'
import { askAnyHost } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, printResult } from './options.js'
import { vmRemoveHints, vmsUsing } from './storage-users.js'

/** The coordinator node commits the removal and asks the array to unpresent and remove the volume. */
const REMOVE_TIMEOUT_MS = 40_000

export function registerCsvRemove(csv: Command): void {
  csv
    .command('remove')
    .description(
      'remove a CSV without regions: its record leaves the cluster database, its volume csv-NAME is unpresented and removed from the array (needs quorum)',
    )
    .argument('<name>', 'CSV name')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"name","array","volume","coordinator","unpresented":[…],"volume_removed","volume_kept_because"}')
    .action(async (name: string, o: { dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const vms = await vmsUsing(client, `remove CSV ${name}`, (r) => r.storage?.kind === 'csv' && r.storage.csv === name)
      if (vms.length > 0)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `cannot remove CSV ${name}: it holds the disk of ${vmRemoveHints(vms)}; remove those vms first`,
        )
      const { t: _t, ...r } = await askAnyHost(
        client,
        { t: 'csv-remove-request', name, forwarded: false },
        'csv-remove-reply',
        REMOVE_TIMEOUT_MS,
      )
      printResult(o.json, r, () => formatCsvRemoval({ t: 'csv-remove-reply', ...r }))
      if (r.volume_kept_because !== null) {
        currentIo().stderr(
          `hvlab: volume ${r.volume} stays on ${r.array}: ${r.volume_kept_because.reason}; remove it with \`hvlab array volume remove ${r.array} ${r.volume} --unpresent\`\n`,
        )
        setExitCode(1)
      }
    })
}

function formatCsvRemoval(r: MessageOf<'csv-remove-reply'>): string {
  const first = `removed CSV ${r.name} (coordinator node ${r.coordinator})`
  if (r.volume_removed)
    return `${first}; its volume ${r.volume} on ${r.array}${r.unpresented.length > 0 ? ` was unpresented from ${r.unpresented.join(', ')} and` : ''} was removed`
  if (r.volume_kept_because === null) return `${first}; its volume ${r.volume} was no longer on ${r.array}`
  return `${first}; its volume ${r.volume} stays on ${r.array}${r.unpresented.length > 0 ? ` (unpresented from ${r.unpresented.join(', ')})` : ''}`
}
