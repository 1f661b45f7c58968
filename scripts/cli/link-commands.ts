/**
 * `hvlab link set|reset|show`: the lab's link faults (issue 13) between processes or sites —
 * latency with jitter, a bandwidth cap and loss, per direction (scripts/controller/link-table.ts,
 * shared/transport/link-shaper.ts). `hvlab partition --one-way` cuts one direction;
 * `hvlab heal` clears partitions and link faults alike.
 */
import type { Command } from 'commander'
import type { LinkRow } from '../controller/link-table.js'
import { LINK_LATENCY_MS_MAX, LINK_LOSS_MAX, LINK_MBIT_MAX } from '../../shared/fault-limits.js'
import { ControlClient } from './control-client.js'
import { formatLinks } from './format.js'
import { dirOption, numberIn, printResult, sideA, sideB } from './options.js'

interface LinkSetOptions {
  dir: string
  json?: boolean
  oneWay?: boolean
  latencyMs: number
  jitterMs: number
  mbit: number
  loss: number
}

export function registerLinkCommands(program: Command): void {
  const link = program
    .command('link')
    .description('network faults on the links between processes or sites: latency, jitter, bandwidth, loss')
  link
    .command('set')
    .description(
      "shape every link between two groups of processes (names or sites, comma-separated), both ways unless --one-way; replaces their earlier shaping (all options 0: a clear link; `hvlab heal` returns to the topology's network)",
    )
    .addArgument(sideA())
    .addArgument(sideB())
    .option('--latency-ms <ms>', 'one-way delay added to every frame', numberIn(0, LINK_LATENCY_MS_MAX), 0)
    .option('--jitter-ms <ms>', "each frame's delay varies by up to ± this (frames stay in order)", numberIn(0, LINK_LATENCY_MS_MAX), 0)
    .option('--mbit <n>', 'bandwidth cap in Mbit/s (0: none); bulk traffic slows down to it', numberIn(0, LINK_MBIT_MAX), 0)
    .option(
      '--loss <p>',
      'probability a frame is lost and sent again after a TCP retransmission timeout (≥ 200 ms): late, never lost',
      numberIn(0, LINK_LOSS_MAX),
      0,
    )
    .option('--one-way', 'only the direction from <a> to <b>')
    .addOption(dirOption())
    .option('--json', 'print every link with a fault as JSON')
    .action(async (a: string[], b: string[], o: LinkSetOptions) => {
      const body = { a, b, one_way: o.oneWay === true, latency_ms: o.latencyMs, jitter_ms: o.jitterMs, mbit: o.mbit, loss: o.loss }
      const r = await ControlClient.forDir(o.dir).post<{ links: LinkRow[] }>('/v1/links', body)
      printResult(o.json, r, () => formatLinks(r.links))
    })
  link
    .command('reset')
    .description('reset every connection between two groups of processes now (as a TCP reset would): both ends lose it, and dial again')
    .addArgument(sideA())
    .addArgument(sideB())
    .addOption(dirOption())
    .option('--json', 'print the two sides as JSON')
    .action(async (a: string[], b: string[], o: { dir: string; json?: boolean }) => {
      const r = await ControlClient.forDir(o.dir).post<{ a: string[]; b: string[] }>('/v1/link-reset', { a, b })
      printResult(o.json, r, () => `reset the connections between ${r.a.join(',')} and ${r.b.join(',')}; they dial again`)
    })
  link
    .command('show')
    .description('every direction of a link with a fault: its shaping, or a one-way cut')
    .addOption(dirOption())
    .option('--json', 'machine-readable: {"links":[{"from","to","latency_ms","jitter_ms","mbit","loss","cut"}]}')
    .action(async (o: { dir: string; json?: boolean }) => {
      const r = await ControlClient.forDir(o.dir).get<{ links: LinkRow[] }>('/v1/links')
      printResult(o.json, r, () => formatLinks(r.links))
    })
}
