/**
 * `hvlab partition`: cut the network between two sides (both ways, or --one-way), or in
 * one of Jepsen's shapes over every process (--isolate, --halves, --bridge, --ring:
 * scripts/controller/partition-shapes.ts). `hvlab heal` removes them all.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { ControlClient } from './control-client.js'
import { dirOption, intIn, printResult, sideA, sideB } from './options.js'

interface PartitionOptions {
  dir: string
  json?: boolean
  oneWay?: boolean
  isolate?: string
  halves?: boolean
  bridge?: boolean
  ring?: boolean
  seed?: number
}

interface Cut {
  a: string[]
  b: string[]
}

export function registerPartition(program: Command): void {
  program
    .command('partition')
    .description(
      'cut the network between two groups of processes (names or sites, comma-separated): both ways (their connections are cut at once), or --one-way; or over every process in a shape: --isolate NAME, --halves, --bridge, --ring',
    )
    .addArgument(sideA(true))
    .addArgument(sideB(true))
    .option(
      '--one-way',
      'only what <a> sends <b> is lost: <b> hears nothing from <a> (not even pings) while <a> still hears <b>; open connections live on until a side gives up on them, no new one can be made',
    )
    .option('--isolate <name>', 'cut one process from every other')
    .option('--halves', 'every process in one of two halves (the larger a majority)')
    .option('--bridge', 'two halves and one process in neither, which reaches both')
    .option('--ring', 'each process reaches only its two neighbours in a ring')
    .option(
      '--seed <n>',
      'the seed that orders the processes for --halves, --bridge, --ring (printed when not given)',
      intIn(0, 0xffff_ffff),
    )
    .addOption(dirOption())
    .option('--json', 'print the partition as JSON')
    .action(async (a: string[] | undefined, b: string[] | undefined, o: PartitionOptions) => {
      const shape = shapeOf(a, b, o) // usage first: it needs no lab
      const client = ControlClient.forDir(o.dir)
      if (shape === undefined) {
        const p = await client.post<Cut & { one_way: boolean }>('/v1/partition', { a, b, one_way: o.oneWay === true })
        const sign = p.one_way ? '→ ✕' : '✕'
        return printResult(o.json, p, () => `partitioned ${p.a.join(',')}  ${sign}  ${p.b.join(',')}; \`hvlab heal\` removes it`)
      }
      const body = { shape, ...(o.isolate === undefined ? {} : { isolate: o.isolate }), ...(o.seed === undefined ? {} : { seed: o.seed }) }
      const r = await client.post<{ shape: string; seed: number; cuts: Cut[] }>('/v1/partition-shape', body)
      printResult(o.json, r, () =>
        [
          `partitioned: ${r.shape}${r.shape === 'isolate' ? '' : ` (seed ${r.seed}: --seed ${r.seed} cuts the same)`}`,
          ...r.cuts.map((c) => `  ${c.a.join(',')}  ✕  ${c.b.join(',')}`),
          '`hvlab heal` removes it',
        ].join('\n'),
      )
    })
}

/** The shape asked for, or undefined for two sides; a mix of both, or neither, is a usage error. */
function shapeOf(a: string[] | undefined, b: string[] | undefined, o: PartitionOptions): string | undefined {
  const shapes = [o.isolate !== undefined && 'isolate', o.halves && 'halves', o.bridge && 'bridge', o.ring && 'ring'].filter(
    (s): s is string => typeof s === 'string',
  )
  const usage = (why: string): never => {
    throw new HvlabError('HVLAB_E_USAGE', `${why}; see hvlab partition --help`)
  }
  if (shapes.length > 1) usage(`pick one shape, not ${shapes.join(' and ')}`)
  if (shapes.length === 0) {
    if (a === undefined || b === undefined) usage('name two sides (A B) or a shape (--isolate NAME, --halves, --bridge, --ring)')
    if (o.seed !== undefined) usage('--seed orders the processes of a shape; two named sides need none')
    return undefined
  }
  if (a !== undefined) usage(`a shape (--${shapes[0]}) covers every process: name no sides`)
  if (o.oneWay) usage('--one-way cuts one direction between two named sides, not a shape')
  return shapes[0]
}
