/** `hvlab vm ping`: talk to a VM's guest service through the lab's virtual switch. */
import { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import { currentIo, setExitCode } from './cli-io.js'
import { intIn, dirOption, out, printResult } from './options.js'
import { PingTally, formatPingSummary, type PingSummary } from './ping-tally.js'

/** Below this interval replies are summed up once a second instead of one line each. */
const LINE_PER_REPLY_MIN_INTERVAL_MS = 100
const SUMMARY_EVERY_MS = 1000
/** Pings sent in one tick at most when the event loop fell behind. */
const CATCH_UP_MAX = 20

export interface PingOptions {
  vm: string
  dir: string
  interval_ms: number
  count: number | null
  timeout_ms: number
  /** Called with each line to print while it runs (nothing with --json). */
  print?: (line: string) => void
  /** Resolves to stop sending early (Ctrl-C); the replies still on their way are waited for as usual. */
  stop?: Promise<void>
}

/** Pings a VM through the switch every `interval_ms` until `count` are sent (or stopped), waits up to `timeout_ms` for the last replies, and returns the tally. */
export async function pingVm(o: PingOptions): Promise<PingSummary> {
  const tally = new PingTally()
  const start = performance.now()
  const now = (): number => performance.now() - start
  const perReply = o.interval_ms >= LINE_PER_REPLY_MIN_INTERVAL_MS
  let closed: string | null = null
  let wake: (() => void) | null = null
  // Loaded here, not at start-up: only `vm ping` needs a WebSocket client.
  const { SwitchClient } = await import('./switch-client.js')
  const client = await SwitchClient.connect(
    o.dir,
    (r) => {
      const at = now()
      if (r.t === 'pong') {
        const kind = tally.pong(r.seq, r.value, r.host, at)
        if (perReply && o.print)
          o.print(`reply from vm ${r.vm} on ${r.host}: seq=${r.seq} value=${r.value}${kind === 'duplicate' ? ' (DUP!)' : ''}`)
      } else {
        tally.unreachable(r.seq, r.reason)
        if (perReply && o.print) o.print(`seq=${r.seq} unreachable: ${r.reason}`)
      }
      if (tally.waiting === 0) wake?.()
    },
    (reason) => {
      closed ??= reason
      wake?.()
    },
  )
  let stopped = false
  void o.stop?.then(() => {
    stopped = true
    wake?.()
  })
  let seq = 0
  let lastSummary = 0
  try {
    while (!stopped && closed === null && (o.count === null || seq < o.count)) {
      const due = Math.min(CATCH_UP_MAX, Math.floor(now() / o.interval_ms) + 1 - seq)
      for (let i = 0; i < due && (o.count === null || seq < o.count); i++) {
        tally.sent(seq, now())
        client.ping(o.vm, seq)
        seq++
      }
      if (!perReply && o.print && now() - lastSummary >= SUMMARY_EVERY_MS) {
        lastSummary = now()
        const s = tally.summary()
        o.print(
          `${(lastSummary / 1000).toFixed(0)} s: ${s.sent} sent, ${s.received} received, ${tally.waiting} waiting, ${s.unreachable} unreachable, longest gap ${s.gap_ms_max} ms, hosts ${s.hosts.join(' → ') || '-'}`,
        )
      }
      const next_ms = seq * o.interval_ms - now()
      await sleep(Math.max(0, next_ms), (w) => (wake = w))
    }
    // The last replies: until every ping is answered, or the timeout.
    const deadline = now() + o.timeout_ms
    while (closed === null && tally.waiting > 0 && now() < deadline) {
      await sleep(deadline - now(), (w) => (wake = w))
    }
  } finally {
    client.close()
  }
  if (closed !== null && seq === 0) throw new HvlabError('HVLAB_E_LAB', closed)
  if (closed !== null && o.print) o.print(closed)
  return tally.summary()
}

const sleep = (ms: number, setWake: (w: (() => void) | null) => void): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done(): void {
      clearTimeout(timer)
      setWake(null)
      resolve()
    }
    setWake(done)
  })

/** `hvlab vm ping`, the last of the vm group's commands. */
export function registerVmPing(vm: Command): void {
  vm.command('ping')
    .description(
      'ping a VM’s guest service at its stable address, through the lab’s virtual switch (it follows the VM when it migrates). ' +
        'Each reply carries the seq and a value the guest keeps in its memory (+1 per reply). ' +
        'Prints a line per reply (a summary each second below 100 ms intervals), then sent, received, lost, out of order, duplicates, ' +
        'the longest gap between replies, whether the value ever went backwards, and the hosts that answered. Exits 1 if any ping was lost',
    )
    .argument('<name>', 'the VM name')
    .option('--interval-ms <n>', 'time between pings', intIn(1, 60_000), 10)
    .option('--count <n>', 'stop after this many pings (default: until Ctrl-C)', intIn(1, 10_000_000))
    .option(
      '--timeout-ms <n>',
      'after the last ping, wait this long for the last replies; later ones count as lost',
      intIn(1, 600_000),
      10_000,
    )
    .option(
      '--json',
      'machine-readable, at the end: {sent,received,lost,out_of_order,duplicates,gap_ms_max,hosts,unreachable,value_continuous,…}',
    )
    .addOption(dirOption())
    .action(async (name: string, o: { dir: string; intervalMs: number; count?: number; timeoutMs: number; json?: boolean }) => {
      let interrupt: () => void = () => {}
      const stop = new Promise<void>((resolve) => (interrupt = resolve))
      // The first Ctrl-C stops sending and waits for the replies on their way; a second one quits.
      const io = currentIo()
      const stopListening = io.onInterrupt?.(interrupt)
      // Replies arrive on the switch's socket: print them to this run's io whatever context the socket calls back in.
      const print = (line: string): void => io.stdout(line + '\n')
      if (!o.json) out(`PING vm ${name} every ${o.intervalMs} ms${o.count ? `, ${o.count} pings` : ''}`)
      let s: PingSummary
      try {
        s = await pingVm({
          vm: name,
          dir: o.dir,
          interval_ms: o.intervalMs,
          count: o.count ?? null,
          timeout_ms: o.timeoutMs,
          stop,
          ...(o.json ? {} : { print }),
        })
      } finally {
        stopListening?.()
      }
      printResult(o.json, { vm: name, ...s }, () => formatPingSummary(name, s))
      if (s.lost > 0) setExitCode(1)
    })
}
