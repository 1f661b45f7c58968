/**
 * `hvlab csv …`: Cluster Shared Volumes — create one on an array, list them with each
 * node's I/O state (Direct / Redirected, like Get-ClusterSharedVolumeState), move the
 * coordinator node, allocate/release regions (VM disks), and test I/O through one host's
 * CSV path (`csv write` / `csv read`), and remove one (csv-remove-command.ts).
 */
import { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import type { CsvInfo, CsvNodeState } from '../../shared/protocol/csv-messages.js'
import type { LabStatus } from '../controller/lab-controller.js'
import { chosenHostsUp } from './cluster-choice.js'
import { askAnyHost } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { registerCsvRemove } from './csv-remove-command.js'
import { dirOption, intIn, out, printResult } from './options.js'
import { GIB, MIB } from './units.js'

/** How long one host may take to report its I/O state for the CSVs (`csv list`). */
const CSV_STATE_TIMEOUT_MS = 5000
/** An I/O may wait for a coordinator node to fail over. */
const IO_REQUEST_TIMEOUT_MS = 30_000

export interface CsvListing {
  csvs: (CsvInfo & { nodes: Record<string, Omit<CsvNodeState, 'csv'>> })[]
}

/** The CSVs (from a host with quorum) and every up host's I/O state for each. */
export async function csvListing(client: ControlClient): Promise<CsvListing> {
  const list = await askAnyHost(client, { t: 'csv-list-request' }, 'csv-list-reply')
  const lab = await client.get<LabStatus>('/v1/status')
  const hosts = chosenHostsUp(lab)
  const states = new Map<string, CsvNodeState[]>()
  await Promise.all(
    hosts.map(async (h) => {
      try {
        states.set(h, (await client.request(h, { t: 'csv-state-request' }, 'csv-state-reply', CSV_STATE_TIMEOUT_MS)).volumes)
      } catch {
        // a host that does not answer is left out; `hvlab status` shows it
      }
    }),
  )
  return {
    csvs: list.csvs.map((c) => {
      const nodes: Record<string, Omit<CsvNodeState, 'csv'>> = {}
      for (const h of [...states.keys()].sort()) {
        const s = states.get(h)!.find((v) => v.csv === c.name)
        if (s) {
          const { csv: _csv, ...rest } = s
          nodes[h] = rest
        }
      }
      return { ...c, nodes }
    }),
  }
}

function formatListing(l: CsvListing): string {
  if (l.csvs.length === 0) return 'no Cluster Shared Volumes; create one with `hvlab csv create NAME --array ARRAY`'
  const lines: string[] = []
  for (const c of l.csvs) {
    lines.push(
      `${c.name}  volume ${c.volume} on ${c.array}  ${(c.size_bytes / GIB).toFixed(2)} GiB  coordinator node ${c.owner}  ${c.regions.length} region(s)`,
    )
    for (const r of c.regions)
      lines.push(
        `  region ${r.region}: blocks ${r.offset_block}..${r.offset_block + r.blocks - 1} (${((r.blocks * c.block_size_bytes) / MIB).toFixed(1)} MiB)`,
      )
    for (const [node, s] of Object.entries(c.nodes)) {
      const why = s.mode === 'Direct' ? '' : ` (${s.state_info}: ${s.reason}${s.detail ? ` — ${s.detail}` : ''})`
      lines.push(
        `  ${node.padEnd(10)} ${s.mode}${why}  written/read direct ${s.bytes_direct} B, redirected ${s.bytes_redirected} B, served for others ${s.bytes_served} B`,
      )
    }
  }
  return lines.join('\n')
}

export function registerCsvCommands(program: Command): void {
  const csv = program
    .command('csv')
    .description('Cluster Shared Volumes: one LUN that every cluster node reads and writes at once; VM disks are regions in it')
  registerCsvCreate(csv)
  registerCsvList(csv)
  registerCsvMove(csv)
  registerCsvAllocate(csv)
  registerCsvRelease(csv)
  registerCsvWrite(csv)
  registerCsvRead(csv)
  registerCsvRemove(csv)
}

function registerCsvCreate(csv: Command): void {
  csv
    .command('create')
    .description(
      'create volume csv-NAME on an array, present it to every cluster host and record it in the cluster database (needs quorum)',
    )
    .argument('<name>', 'CSV name (1–48 of a-z 0-9 . _ -)')
    .requiredOption('--array <array>', 'the array that holds the volume, e.g. array-a')
    .option('--size-gib <n>', 'size in GiB', intIn(1, 64), 1)
    .addOption(dirOption())
    .option('--json', 'print the CSV as JSON')
    .action(async (name: string, o: { array: string; sizeGib: number; dir: string; json?: boolean }) => {
      const r = await askAnyHost(
        ControlClient.forDir(o.dir),
        { t: 'csv-create-request', name, array: o.array, size_bytes: o.sizeGib * GIB },
        'csv-list-reply',
      )
      printResult(
        o.json,
        r.csvs[0],
        () => `CSV ${name} created: volume ${r.csvs[0]?.volume} on ${o.array}, coordinator node ${r.csvs[0]?.owner}`,
      )
    })
}

function registerCsvList(csv: Command): void {
  csv
    .command('list')
    .description(
      "each CSV with its coordinator node, its regions, and every node's I/O state (Direct, or Redirected with why) and bytes moved",
    )
    .addOption(dirOption())
    .option('--json', 'print as JSON')
    .action(async (o: { dir: string; json?: boolean }) => {
      const l = await csvListing(ControlClient.forDir(o.dir))
      printResult(o.json, l, () => formatListing(l))
    })
}

function registerCsvMove(csv: Command): void {
  csv
    .command('move')
    .description(
      'move the coordinator node of a CSV to another cluster member and return once it has moved (VM I/O is not interrupted); a CSV already coordinated there is left as it is',
    )
    .argument('<name>', 'CSV name')
    .requiredOption('--to <host>', 'the new coordinator node')
    .addOption(dirOption())
    .option('--json', 'print the CSV as JSON')
    .action(async (name: string, o: { to: string; dir: string; json?: boolean }) => {
      const client = ControlClient.forDir(o.dir)
      const before = (await askAnyHost(client, { t: 'csv-list-request' }, 'csv-list-reply')).csvs.find((c) => c.name === name)
      if (before?.owner === o.to)
        return printResult(o.json, before, () => `CSV ${name}: ${o.to} is already its coordinator node; nothing moved`)
      // The host answers once the hand-off is recorded and the new coordinator node serves it.
      const csv = (await askAnyHost(client, { t: 'csv-move-request', name, to: o.to }, 'csv-list-reply')).csvs[0]
      if (csv?.owner !== o.to)
        throw new HvlabError(
          'HVLAB_E_STATE',
          `CSV ${name} did not move: its coordinator node is ${csv?.owner ?? 'unknown'}; \`hvlab csv list\` shows it`,
        )
      printResult(o.json, csv, () => `CSV ${name}: coordinator node moved ${before?.owner ?? '?'} → ${csv.owner}`)
    })
}

function registerCsvAllocate(csv: Command): void {
  csv
    .command('allocate')
    .description('allocate a region (a VM disk) inside a CSV, through its coordinator node')
    .argument('<name>', 'CSV name')
    .requiredOption('--region <region>', "region name (the VM's name)")
    .requiredOption('--size-mib <n>', 'size in MiB', intIn(1, 64 * 1024))
    .addOption(dirOption())
    .option('--json', 'print the allocation as JSON')
    .action(async (name: string, o: { region: string; sizeMib: number; dir: string; json?: boolean }) => {
      const r = await askAnyHost(
        ControlClient.forDir(o.dir),
        { t: 'csv-region-request', csv: name, region: o.region, op: 'allocate', size_bytes: o.sizeMib * MIB, forwarded: false },
        'csv-region-reply',
      )
      printResult(
        o.json,
        r,
        () =>
          `region ${o.region} of CSV ${name}: blocks ${r.allocation?.offset_block}..${(r.allocation?.offset_block ?? 0) + (r.allocation?.blocks ?? 0) - 1} (coordinator node ${r.owner})`,
      )
    })
}

function registerCsvRelease(csv: Command): void {
  csv
    .command('release')
    .description('release a region of a CSV, through its coordinator node')
    .argument('<name>', 'CSV name')
    .requiredOption('--region <region>', 'region name')
    .addOption(dirOption())
    .action(async (name: string, o: { region: string; dir: string }) => {
      await askAnyHost(
        ControlClient.forDir(o.dir),
        { t: 'csv-region-request', csv: name, region: o.region, op: 'release', forwarded: false },
        'csv-region-reply',
      )
      out(`region ${o.region} of CSV ${name} released`)
    })
}

/** What `csv write` and `csv read` take after their description: which blocks of which region, through which host. */
const ioOptions = (c: Command): Command =>
  c
    .argument('<name>', 'CSV name')
    .requiredOption('--region <region>', 'region name')
    .requiredOption('--host <host>', 'the host whose CSV I/O path to use')
    .option('--block <n>', 'first block inside the region', intIn(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--blocks <n>', 'number of blocks', intIn(1, 256), 1)
    .addOption(dirOption())
    .option('--json', 'print the result as JSON')

interface CsvIoOptions {
  region: string
  host: string
  block: number
  blocks: number
  dir: string
  json?: boolean
}

function registerCsvWrite(csv: Command): void {
  ioOptions(
    csv
      .command('write')
      .description(
        "test write: pattern data (see `hvlab array write --pattern`) through one host's CSV path; says whether it went direct or redirected",
      ),
  )
    .requiredOption('--pattern <seed>', 'data seed: block b holds sha256("SEED:b") repeated')
    .action(async (name: string, o: CsvIoOptions & { pattern: string }) => {
      const r = await ControlClient.forDir(o.dir).request(
        o.host,
        { t: 'csv-write-request', csv: name, region: o.region, block: o.block, blocks: o.blocks, pattern: o.pattern },
        'csv-io-reply',
        IO_REQUEST_TIMEOUT_MS,
      )
      printResult(o.json, r, () => `${o.host} wrote ${o.blocks} block(s) ${r.path}${r.via ? ` via ${r.via}` : ''}; sha256 ${r.sha256}`)
    })
}

function registerCsvRead(csv: Command): void {
  ioOptions(
    csv
      .command('read')
      .description("test read through one host's CSV path: the sha256 of the blocks, and whether it went direct or redirected"),
  ).action(async (name: string, o: CsvIoOptions) => {
    const r = await ControlClient.forDir(o.dir).request(
      o.host,
      { t: 'csv-read-request', csv: name, region: o.region, block: o.block, blocks: o.blocks },
      'csv-io-reply',
      IO_REQUEST_TIMEOUT_MS,
    )
    printResult(o.json, r, () => `${o.host} read ${o.blocks} block(s) ${r.path}${r.via ? ` via ${r.via}` : ''}; sha256 ${r.sha256}`)
  })
}
