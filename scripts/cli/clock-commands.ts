/**
 * `hvlab clock set NAME`: the lab's clock faults (issue 13). A process's clock reads an
 * offset ahead of (or behind) the real clock and runs faster or slower by a drift rate;
 * its leases, ticks, timeouts and timestamps all follow it (shared/skewed-clock.ts).
 */
import type { Command } from 'commander'
import { CLOCK_DRIFT_MAX, CLOCK_OFFSET_MS_MAX } from '../../shared/fault-limits.js'
import type { ClockSkew } from '../../shared/skewed-clock.js'
import { ControlClient } from './control-client.js'
import { formatClockSkew } from './format.js'
import { dirOption, numberIn, printResult } from './options.js'

export function registerClockCommands(program: Command): void {
  const clock = program.command('clock').description("clock faults: a process's clock set ahead, behind, fast or slow")
  clock
    .command('set')
    .description(
      "skew one process's clock from now on (kept across its restarts); no options: its clock is the real one again. The lab's leases tolerate 100 ms between any two clocks (README: Failover and quorum)",
    )
    .argument('<name>', 'the process, e.g. host-a1')
    .option(
      '--offset-ms <ms>',
      'how far ahead it reads (negative: behind; a step back stands the clock still until real time catches up)',
      numberIn(-CLOCK_OFFSET_MS_MAX, CLOCK_OFFSET_MS_MAX),
      0,
    )
    .option(
      '--drift <rate>',
      'how much faster it runs: 0.01 gains 10 ms a second, -0.01 loses them; its timers shorten or lengthen alike',
      numberIn(-CLOCK_DRIFT_MAX, CLOCK_DRIFT_MAX),
      0,
    )
    .addOption(dirOption())
    .option('--json', 'print the skew set as JSON: {"offset_ms","drift"}')
    .action(async (name: string, o: { dir: string; json?: boolean; offsetMs: number; drift: number }) => {
      const skew = await ControlClient.forDir(o.dir).post<ClockSkew>(`/v1/processes/${encodeURIComponent(name)}/clock`, {
        offset_ms: o.offsetMs,
        drift: o.drift,
      })
      printResult(o.json, skew, () => `clock ${name}: ${formatClockSkew(skew)}`)
    })
}
