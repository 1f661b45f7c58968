/**
 * `hvlab array …`: the storage arrays' own commands — virtual volumes (create, grow,
 * remove: volume-remove-command.ts, list), LUN presentation to hosts, and test I/O as a host would do it (`array
 * write` / `array read`), and disk faults (`array disk`). Each one is a request to an array process (array-client.ts).
 */
import { type Command, InvalidArgumentError } from 'commander'
import type { Message } from '../../shared/protocol/messages.js'
import { DISK_FSYNC_DELAY_MS_MAX } from '../../shared/fault-limits.js'
import { BLOCKS_PER_IO_MAX, DIGEST_BLOCKS_MAX } from '../../shared/protocol/storage-limits.js'
import { type DirOpt, type JsonOpt, ask } from './array-client.js'
import { table } from './format.js'
import { dirOption, intIn, nameList, out, printJson, printResult } from './options.js'
import { GIB, MIB } from './units.js'
import { registerVolumeRemove } from './volume-remove-command.js'

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kib: 1024, m: MIB, mib: MIB, g: GIB, gib: GIB }

/** "1MiB", "64k", "4096" → bytes. */
export const sizeBytes = (v: string): number => {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(v.trim())
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined) throw new InvalidArgumentError('a size like 4096, 64KiB, 1MiB or 1GiB')
  const n = Number(m[1]) * unit
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError('a positive size')
  return n
}

const uint = intIn(0, Number.MAX_SAFE_INTEGER)

export function registerArrayCommands(program: Command): void {
  const array = program.command('array').description('storage arrays: virtual volumes, LUN presentation, test I/O')
  const volume = array.command('volume').description('virtual volumes on an array')
  registerVolumeCreate(volume)
  registerVolumeGrow(volume)
  registerVolumeRemove(volume)
  registerVolumeList(volume)
  registerPresent(array)
  registerUnpresent(array)
  registerArrayWrite(array)
  registerArrayRead(array)
  registerArrayDisk(array)
}

function registerArrayDisk(array: Command): void {
  array
    .command('disk')
    .description(
      'disk faults on an array from now on (until set again or the array restarts); no options: a healthy disk. The array refuses or delays the writes it cannot make durable and never acknowledges them',
    )
    .argument('<array>', 'array name, e.g. array-a')
    .option(
      '--fsync-delay-ms <ms>',
      'each fsync takes this much longer (a slow disk); writes are acknowledged that much later',
      intIn(0, DISK_FSYNC_DELAY_MS_MAX),
      0,
    )
    .option(
      '--fsync-fails',
      'every fsync fails: the writes that waited on it are refused (their bytes may be in the file, as after a real failed fsync)',
    )
    .option('--full', 'the disk is full: every write, volume create and grow is refused before anything is written')
    .addOption(dirOption())
    .option('--json', 'print the disk faults now in force: {"fsync_delay_ms","fsync_fails","full"}')
    .action(async (a: string, o: JsonOpt & { fsyncDelayMs: number; fsyncFails?: boolean; full?: boolean }) => {
      const faults = { fsync_delay_ms: o.fsyncDelayMs, fsync_fails: o.fsyncFails === true, full: o.full === true }
      const r = await ask(o, a, { t: 'disk-fault-set', ...faults }, 'disk-faults')
      const { t: _t, ...now } = r
      const said = [
        now.fsync_delay_ms > 0 && `fsync ${now.fsync_delay_ms} ms slower`,
        now.fsync_fails && 'fsync fails',
        now.full && 'full',
      ].filter(Boolean)
      printResult(o.json, now, () => `disk of ${a}: ${said.length === 0 ? 'healthy' : said.join(', ')}`)
    })
}

function registerVolumeCreate(volume: Command): void {
  volume
    .command('create')
    .description('create a virtual volume (a sparse file in the array’s data dir, 4 KiB blocks)')
    .argument('<array>', 'array name, e.g. array-a')
    .argument('<volume>', 'volume name, e.g. vm1-disk0')
    .requiredOption('--size <size>', 'size: a multiple of 4 KiB, e.g. 1MiB', sizeBytes)
    .addOption(dirOption())
    .option('--json', 'print the array’s volumes as JSON')
    .action(async (a: string, v: string, o: JsonOpt & { size: number }) => {
      const r = await ask(o, a, { t: 'volume-create', volume: v, size_bytes: o.size }, 'volume-listing')
      printResult(o.json, r, () => `created volume ${v} (${o.size} bytes) on ${a}`)
    })
}

function registerVolumeGrow(volume: Command): void {
  volume
    .command('grow')
    .description('grow a volume (never shrinks; new blocks read as zeros)')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .requiredOption('--size <size>', 'the new size, e.g. 2MiB', sizeBytes)
    .addOption(dirOption())
    .option('--json', 'print the array’s volumes as JSON')
    .action(async (a: string, v: string, o: JsonOpt & { size: number }) => {
      const r = await ask(o, a, { t: 'volume-grow', volume: v, size_bytes: o.size }, 'volume-listing')
      printResult(o.json, r, () => `volume ${v} on ${a} is now ${o.size} bytes`)
    })
}

function registerVolumeList(volume: Command): void {
  volume
    .command('list')
    .description('the volumes of an array')
    .argument('<array>', 'array name')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"block_size_bytes","volumes":[{"volume","size_bytes"}]}')
    .action(async (a: string, o: JsonOpt) => {
      const r = await ask(o, a, { t: 'volume-list' }, 'volume-listing')
      if (o.json) return printJson(r)
      out(
        r.volumes.length === 0
          ? `no volumes on ${a}`
          : table([
              ['VOLUME', 'SIZE-BYTES', 'BLOCKS'],
              ...r.volumes.map((x) => [x.volume, `${x.size_bytes}`, `${x.size_bytes / r.block_size_bytes}`]),
            ]),
      )
    })
}

function registerPresent(array: Command): void {
  array
    .command('present')
    .description('present (LUN-mask) a volume to a host; with --wwn only those initiators (a VFC WWN A/B pair) may do I/O')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .argument('<host>', 'host name, e.g. host-a1')
    .option('--wwn <ids>', 'up to two initiator WWNs, comma-separated (c0:03:ff:00:00:ff:ff:00,…)', nameList)
    .addOption(dirOption())
    .option('--json', 'print the volume’s presentations as JSON')
    .action(async (a: string, v: string, h: string, o: JsonOpt & { wwn?: string[] }) => {
      const r = await ask(o, a, { t: 'lun-present', volume: v, host: h, initiators: o.wwn ?? [] }, 'lun-presentations')
      printResult(
        o.json,
        r,
        () =>
          `volume ${v} on ${a} is presented to ${r.presentations.map((p) => p.host + (p.initiators.length ? ` (${p.initiators.join(', ')})` : '')).join(', ')}`,
      )
    })
}

function registerUnpresent(array: Command): void {
  array
    .command('unpresent')
    .description('stop presenting a volume to a host')
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .argument('<host>', 'host name')
    .addOption(dirOption())
    .action(async (a: string, v: string, h: string, o: DirOpt) => {
      await ask(o, a, { t: 'lun-unpresent', volume: v, host: h }, 'lun-presentations')
      out(`volume ${v} on ${a} is no longer presented to ${h}`)
    })
}

/** What `array write` and `array read` start with: which volume on which array, and its blocks from --block, at most `blocks_max`. */
const blockRange = (c: Command, blocks_max: number): Command =>
  c
    .argument('<array>', 'array name')
    .argument('<volume>', 'volume name')
    .requiredOption('--block <n>', 'first block', uint)
    .option('--blocks <k>', `number of blocks (1-${blocks_max})`, intIn(1, blocks_max), 1)

interface BlockRangeOpt extends JsonOpt {
  block: number
  blocks: number
  initiator?: string
}

function registerArrayWrite(array: Command): void {
  blockRange(
    array
      .command('write')
      .description('write test data as a host would (masking and fencing apply); block b gets sha256("SEED:b") repeated'),
    BLOCKS_PER_IO_MAX,
  )
    .requiredOption('--host <host>', 'the host the write comes from')
    .option('--initiator <wwn>', 'the initiator WWN it comes through')
    .requiredOption('--epoch <e>', 'the writer’s cluster epoch (reservation)', uint)
    .requiredOption('--pattern <seed>', 'seed of the data pattern')
    .addOption(dirOption())
    .option('--json', 'print the reply as JSON')
    .action(async (a: string, v: string, o: BlockRangeOpt & { host: string; epoch: number; pattern: string }) => {
      const m: Message = {
        t: 'block-write-pattern',
        volume: v,
        host: o.host,
        epoch: o.epoch,
        block: o.block,
        blocks: o.blocks,
        pattern: o.pattern,
        ...(o.initiator ? { initiator: o.initiator } : {}),
      }
      const r = await ask(o, a, m, 'block-written', 60_000)
      printResult(o.json, r, () => `wrote blocks ${r.block}..${r.block + r.blocks - 1} of ${v} on ${a} (acknowledged)`)
    })
}

function registerArrayRead(array: Command): void {
  blockRange(
    array.command('read').description('read blocks and print their sha256 (per block, or of the whole range with --sha256)'),
    DIGEST_BLOCKS_MAX,
  )
    .option('--host <host>', 'read as this host (masking applies); without it, an administrator’s read')
    .option('--initiator <wwn>', 'the initiator WWN, with --host')
    .option('--sha256', 'print only the sha256 of the whole range')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"volume","block","blocks","sha256","block_sha256":[…]}')
    .action(async (a: string, v: string, o: BlockRangeOpt & { host?: string; sha256?: boolean }) => {
      const m: Message = {
        t: 'block-digest-request',
        volume: v,
        block: o.block,
        blocks: o.blocks,
        ...(o.host ? { host: o.host } : {}),
        ...(o.initiator ? { initiator: o.initiator } : {}),
      }
      const r = await ask(o, a, m, 'block-digest', 60_000)
      if (o.json) return printJson(r)
      if (o.sha256 || !r.block_sha256) return out(r.sha256)
      out(r.block_sha256.map((h, i) => `${r.block + i}  ${h}`).join('\n'))
    })
}
