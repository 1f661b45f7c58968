/**
 * `hvlab replica size VM --minutes N` (seed 002: "how much bandwidth will you need? …
 * measure how much change there is"): the host running the VM records its guest disk
 * writes for N minutes (agent/replica/churn-measurements.ts); the command waits, asking
 * that host how it stands, and prints what each replication frequency needs: the busiest
 * cycle's bytes and the mean, per cycle and in Mbit/s. The VM need not be replicated.
 *
 * Minutes are the lab's, like the frequencies: both are scaled by the topology's
 * timeScale, so at 0.1 `--minutes 5` records for 30 s, a 5-minute cycle lasts 30 s, and
 * `--minutes 15` always covers one full cycle of every frequency. The bytes a second are
 * real ones, on the lab's links (`hvlab link set --mbit`, `replica enable --max-mbit`).
 */
import { type Command, InvalidArgumentError } from 'commander'
import { HvlabError, asErrorCode, isTransientError, type HvlabCode } from '../../shared/errors.js'
import type { MessageOf } from '../../shared/protocol/messages.js'
import { SIZING_DURATION_MS_MAX } from '../../shared/protocol/replica-limits.js'
import { HOST_REQUEST_TIMEOUT_MS } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { table } from './format.js'
import { dirOption, out, printResult } from './options.js'
import { vmRole } from './vm-queries.js'
import { WAIT_POLL_MS, done, realWaitClock, waitFor, waiting, type WaitStep } from './wait-for.js'

type SizeReply = MessageOf<'replica-size-reply'>

const MINUTES_MAX = SIZING_DURATION_MS_MAX / 60_000
/** How long the command waits beyond the measurement for the host's last answer. */
const SIZE_WAIT_MARGIN_MS = 30_000
/** It asks the host how the measurement stands about 20 times over it, every 0.25 s to 5 s. */
const pollMs = (measured_ms: number): number => Math.min(5_000, Math.max(WAIT_POLL_MS, measured_ms / 20))

/** `--minutes`: above 0 (fractions allowed), at most a week. */
const minutes = (v: string): number => {
  const n = Number(v)
  if (!Number.isFinite(n) || n <= 0 || n > MINUTES_MAX || Math.round(n * 60_000) < 1)
    throw new InvalidArgumentError(`a number of minutes above 0 (fractions allowed), at most ${MINUTES_MAX} (a week)`)
  return n
}

/** One frequency as `replica size` prints it: the host's figures, and in Mbit/s and bytes per cycle. */
export type FrequencySizingView = SizeReply['frequencies'][number] & {
  peak_mbit_s: number
  mean_mbit_s: number
  mean_cycle_bytes: number
}

/** What `replica size --json` prints. */
export type ReplicaSizeView = Omit<SizeReply, 't' | 'frequencies' | 'error' | 'error_code' | 'state'> & {
  frequencies: FrequencySizingView[]
}

export function registerSize(replica: Command): void {
  replica
    .command('size')
    .description(
      "measure a VM's churn (its guest disk writes, recorded by the host running it) and report the bandwidth each replication frequency (30s, 5m, 15m) needs: the busiest cycle's changes and the mean, in Mbit/s and bytes per cycle. The VM need not be replicated",
    )
    .argument('<vm>', 'the VM name (it must be running)')
    .requiredOption(
      '--minutes <n>',
      "how long to measure, in the lab's minutes (fractions allowed, up to a week): scaled by the topology timeScale as the frequencies are, so at 0.1 `--minutes 5` records for 30 s",
      minutes,
    )
    .option(
      '--json',
      'machine-readable: {vm,host,time_scale,duration_ms,measured_ms,writes,block_size_bytes,frequencies:[{frequency_ms,cycle_ms,cycles,full_cycles,peak_cycle_bytes,peak_mbit_s,mean_cycle_bytes,mean_mbit_s,total_bytes,…}]}',
    )
    .addOption(dirOption())
    .action(async (vm: string, o: { minutes: number; json?: boolean; dir: string }) => {
      const view = await measureChurn(ControlClient.forDir(o.dir), vm, o.minutes, (begun) => {
        if (o.json !== true)
          out(`measuring vm ${vm} on ${begun.host} for ${o.minutes} min of the lab's time (${seconds(begun.measured_ms)})…`)
      })
      printResult(o.json, view, () => formatSizing(view))
    })
}

/** Measures `vm` for `minutes` of the lab's time on the host running it and returns what each frequency needs (tests call it in-process). */
export async function measureChurn(
  client: ControlClient,
  vm: string,
  minutes: number,
  onBegun: (begun: SizeReply) => void = () => {},
): Promise<ReplicaSizeView> {
  const role = await vmRole(client, vm)
  if (role.state !== 'running' || role.owner === null)
    throw new HvlabError('HVLAB_E_STATE', `vm ${vm} is ${role.state}: its churn is measured while it runs (\`hvlab vm start ${vm}\`)`)
  const host = role.owner
  const duration_ms = Math.round(minutes * 60_000)
  const begun = await client.request(host, { t: 'replica-size-request', vm, duration_ms }, 'replica-size-reply', HOST_REQUEST_TIMEOUT_MS)
  onBegun(begun)
  const spec = {
    what: `the churn measurement of vm ${vm} on ${host}`,
    watch: `\`hvlab vm list\``,
    timeout_ms: begun.measured_ms + SIZE_WAIT_MARGIN_MS,
    poll: () => pollMeasurement(client, host, vm),
  }
  return sizingView(await waitFor(spec, realWaitClock, pollMs(begun.measured_ms)))
}

async function pollMeasurement(client: ControlClient, host: string, vm: string): Promise<WaitStep<SizeReply>> {
  let r: SizeReply
  try {
    r = await client.request(host, { t: 'replica-size-status-request', vm }, 'replica-size-reply', HOST_REQUEST_TIMEOUT_MS)
  } catch (e) {
    if (isTransientError(e)) throw e // still waiting
    if (HvlabError.has(e, 'HVLAB_E_PROCESS_DOWN') || HvlabError.has(e, 'HVLAB_E_NOT_FOUND'))
      return interrupted(`${host} went down during the churn measurement of vm ${vm} (it has no measurement of it now)`, vm)
    throw e
  }
  if (r.state === 'done') return done(r)
  if (r.state === 'measuring') return waiting(`${seconds(r.elapsed_ms)} of ${seconds(r.measured_ms)} measured`)
  const now = await vmRole(client, vm).catch(() => null)
  const runs = now?.state === 'running' && now.owner !== null
  const where = !runs
    ? `vm ${vm} is ${now?.state ?? 'gone'}`
    : now.owner !== host
      ? `vm ${vm} moved to ${now.owner}`
      : `vm ${vm} stopped and runs again on ${host}`
  return interrupted(
    `${where}: its churn measurement on ${host} ended early`,
    vm,
    asErrorCode(r.error_code ?? '', 'HVLAB_E_SIZING_INTERRUPTED'),
  )
}

/** The measurement ended early (HVLAB_E_SIZING_INTERRUPTED unless the host said otherwise). */
function interrupted(why: string, vm: string, code: HvlabCode = 'HVLAB_E_SIZING_INTERRUPTED'): WaitStep<never> {
  return { kind: 'failed', error: new HvlabError(code, `${why}; measure it again where it runs: \`hvlab replica size ${vm} --minutes N\``) }
}

function sizingView(r: SizeReply): ReplicaSizeView {
  const { t: _t, state: _s, error: _e, error_code: _c, frequencies, ...rest } = r
  return {
    ...rest,
    frequencies: frequencies.map((f) => ({
      ...f,
      peak_mbit_s: mbit(f.peak_bytes_per_s),
      mean_mbit_s: mbit(f.mean_bytes_per_s),
      mean_cycle_bytes: Math.round((f.mean_bytes_per_s * f.cycle_ms) / 1000),
    })),
  }
}

const mbit = (bytes_per_s: number): number => (bytes_per_s * 8) / 1e6
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`
const labFrequency = (ms: number): string => (ms < 60_000 ? `${ms / 1000}s` : `${ms / 60_000}m`)

export function formatSizing(v: ReplicaSizeView): string {
  const head = `vm ${v.vm} on ${v.host}: ${v.duration_ms / 60_000} min of the lab's time (${seconds(v.measured_ms)} at timeScale ${v.time_scale}), ${v.writes} writes of ${v.block_size_bytes}-byte blocks`
  const rows = v.frequencies.map((f) => [
    labFrequency(f.frequency_ms),
    seconds(f.cycle_ms),
    f.full_cycles === f.cycles ? String(f.cycles) : `${f.cycles} (${f.cycles - f.full_cycles} partial)`,
    String(f.peak_cycle_bytes),
    f.peak_mbit_s.toFixed(3),
    String(f.mean_cycle_bytes),
    f.mean_mbit_s.toFixed(3),
  ])
  const partial = v.frequencies.filter((f) => f.full_cycles === 0)
  return [
    head,
    table([['FREQUENCY', 'CYCLE', 'CYCLES', 'PEAK B/CYCLE', 'PEAK MBIT/S', 'MEAN B/CYCLE', 'MEAN MBIT/S'], ...rows]),
    "Each cycle ships the latest write of each block it changed. PEAK: the busiest cycle's changes must cross the link before the next cycle closes; below MEAN replication falls behind for good.",
    ...(partial.length === 0
      ? []
      : [
          `${partial.map((f) => labFrequency(f.frequency_ms)).join(', ')}: no full cycle measured, so the peak is the partial cycle's; --minutes ${Math.max(...partial.map((f) => f.frequency_ms)) / 60_000} or more covers one.`,
        ]),
  ].join('\n')
}
