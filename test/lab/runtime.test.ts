/**
 * The lab runtime with real processes: the default two-site topology comes up with
 * every process connected to its peers; a kill -9 is reported in status and events;
 * a restart reconnects; a site partition cuts and heal restores the links; a one-way cut
 * leaves the deaf side without the peer and no new connection, link shaping reaches the
 * processes, heal clears both, and a connection reset is dialled again; a clock skew reaches the process and survives its
 * restart; a paused
 * (SIGSTOP) process is lost by its peers and comes back on SIGCONT; a process that dies by
 * itself is reported with its last log lines; bad commands get clear errors; a hostile request to the control port
 * ends nothing; `hvlab down` leaves no process behind.
 */
import { existsSync, readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { runningLab } from '../../scripts/cli/control-client.js'
import type { LabStatus } from '../../scripts/controller/lab-controller.js'
import { rawExchange, requestBytes } from '../unit/raw-http.js'
import { ALLOCATOR_ENV, LAB_NODE_ARGS } from '../../shared/lab-runtime.js'
import { isAlive, startLab, type LabEvent, type TestLab } from './lab-fixture.js'

/** A gauge's value in Prometheus text (the first series of that name). */
function gaugeValue(text: string, name: string): number | undefined {
  const m = text.match(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, 'm'))
  return m ? Number(m[1]) : undefined
}

/** Event-loop lag: a number ≥ 0 in a host's metrics and GET /status, in the lab's status, and the controller's own. */
async function checkEventLoopLag(
  t: Test,
  lab: TestLab,
  metrics: string,
  own: { p50_ms: number; p99_ms: number; max_ms: number; samples: number; window_ms: number } | undefined,
): Promise<void> {
  for (const name of [
    'event_loop_lag_p50',
    'event_loop_lag_p99',
    'event_loop_lag_max',
    'nodejs_eventloop_lag_p50',
    'nodejs_eventloop_lag_p99',
  ]) {
    const v = gaugeValue(metrics, `hvlab_${name}_seconds`)
    t.ok(v !== undefined && Number.isFinite(v) && v >= 0, `hvlab_${name}_seconds is a number ≥ 0 (${v})`)
  }
  t.ok(
    own && own.samples > 0 && own.p50_ms >= 0 && own.p99_ms >= own.p50_ms && own.max_ms >= own.p99_ms,
    `GET /status event_loop_lag: ${JSON.stringify(own)}`,
  )
  // the controller reads each process's lag from its GET /status about every second
  const s = await lab.waitFor(
    'every process’s lag in the lab status',
    async () => {
      const now = await lab.status()
      return now.processes.every((p) => p.eventLoopLag !== null) && now.lab.eventLoopLag !== null ? now : undefined
    },
    15_000,
  )
  t.ok(
    s.processes.every((p) => p.eventLoopLag!.p99_ms >= 0),
    'hvlab status --json: eventLoopLag of every process',
  )
  const controllerMetrics = await (await fetch(`http://127.0.0.1:${s.lab.metricsPort}/metrics`)).text()
  const v = gaugeValue(controllerMetrics, 'hvlab_event_loop_lag_p99_seconds')
  t.ok(v !== undefined && v >= 0 && /role="controller"/.test(controllerMetrics), `the controller's own metrics (${v})`)
  const table = await lab.cli('status')
  t.match(table.stdout, /^NAME .* PEERS +LAG P99 +METRICS$/m, 'hvlab status has a LAG P99 column')
  t.match(table.stdout, /^host-a1 .* (<1|\d+)ms +http:/m, 'with host-a1’s lag in whole ms')
  t.match(table.stdout, /\(controller pid \d+, lag p99 (<1|\d+)ms\)/, 'and the controller’s on the lab’s line')
}

/**
 * A one-way cut from the coordinator to a member: the member hears nothing from it (not even
 * pings), gives up on the connection, and no new one can be made; shaping reaches the
 * processes; heal reconnects them.
 */
async function checkLinkFaults(t: Test, lab: TestLab): Promise<void> {
  const before = await lab.status()
  const coordinator = before.cluster!.hosts['host-b2']!.coordinator
  const member = ['host-a2', 'host-b1', 'host-b2'].find((h) => h !== coordinator)!
  t.equal((await lab.cli('partition', coordinator, member, '--one-way')).code, 0, `one-way cut ${coordinator} → ${member}`)
  const cut = await lab.waitFor(`${member} and ${coordinator} apart`, async () => {
    const s = await lab.status()
    const m = s.processes.find((p) => p.name === member)!
    const c = s.processes.find((p) => p.name === coordinator)!
    return !m.peers.includes(coordinator) && !c.peers.includes(member) ? s : undefined
  })
  t.ok(cut.lab.healthy, 'no new connection is expected across a one-way cut: the lab counts as healthy')
  const memberStatus = async (): Promise<{ link_faults: Record<string, unknown>[] }> => {
    const port = cut.processes.find((p) => p.name === member)!.metricsPort
    return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { link_faults: Record<string, unknown>[] }
  }
  t.match((await memberStatus()).link_faults, [{ peer: coordinator, deaf: true, no_new_connections: true }], 'the member is deaf to it')
  t.equal((await lab.cli('link', 'set', member, 'witness', '--latency-ms', '30', '--mbit', '200')).code, 0)
  await lab.waitFor('the shaping applied by the member', async () =>
    (await memberStatus()).link_faults.some((f) => f.peer === 'witness' && f.latency_ms === 30 && f.mbit === 200) ? true : undefined,
  )
  t.match((await lab.cli('status')).stdout, new RegExp(`link ${member} → witness: 30 ms, 200 Mbit/s`), 'status lists the link')
  t.equal((await lab.cli('heal')).code, 0)
  await lab.waitFor('all connected again after the one-way cut', async () => {
    const s = await lab.status()
    return s.processes.every((p) => p.peers.length === p.expectedPeers.length) ? s : undefined
  })
  t.same((await memberStatus()).link_faults, [], 'heal cleared the faults in the processes too')

  // a connection reset: both ends lose the connection at once, and dial it again
  const last = (await lab.events()).at(-1)!.seq
  t.equal((await lab.cli('link', 'reset', member, 'witness')).code, 0)
  const lost = (e: LabEvent) => e.kind === 'peer.lost' && e.source === member && e.details.peer === 'witness'
  const back = (e: LabEvent) => e.kind === 'peer.connected' && e.source === member && e.details.peer === 'witness'
  const after = await lab.eventsAfter(last, (evs) => evs.some(lost) && evs.some(back))
  t.ok(after.findIndex(lost) < after.findIndex(back), `${member} lost the witness and connected to it again`)
}

/** `hvlab clock set`: the process's clock follows it, and keeps it across a restart; no options clear it. */
async function checkClockSkew(t: Test, lab: TestLab): Promise<void> {
  const name = 'host-b1'
  const clockOf = async (): Promise<{ offset_ms: number; drift: number }> => {
    const port = (await lab.status()).processes.find((p) => p.name === name)!.metricsPort
    return ((await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { clock_skew: { offset_ms: number; drift: number } })
      .clock_skew
  }
  // Within the lab's 100 ms tolerance for the rest of the test: 40 ms, gaining 1 ms a second.
  const set = await lab.cli('clock', 'set', name, '--offset-ms', '40', '--drift', '0.001')
  t.equal(set.code, 0, set.stderr)
  t.match(set.stdout, /clock host-b1: 40 ms ahead, gaining 0.1 %/)
  const applied = await lab.waitFor('the skew applied', async () => ((await clockOf()).drift === 0.001 ? clockOf() : undefined))
  t.ok(applied.offset_ms >= 40 && applied.offset_ms < 100, `host-b1 reads ${applied.offset_ms.toFixed(1)} ms ahead`)
  t.match((await lab.cli('status')).stdout, /^clock host-b1: 40 ms ahead, gaining 0.1 %$/m, 'status shows it')
  t.equal((await lab.cli('restart', name)).code, 0)
  await lab.waitFor('host-b1 up again', async () =>
    (await lab.status()).processes.find((p) => p.name === name)!.state === 'up' ? true : undefined,
  )
  const again = await lab.waitFor('the skew set again after the restart', async () =>
    (await clockOf()).drift === 0.001 ? clockOf() : undefined,
  )
  t.ok(again.offset_ms >= 40, 'a restarted process gets its skew again')
  t.match(
    await errorText(lab.cli('clock', 'set', name, '--drift', '0.95')),
    /option '--drift <rate>' argument '0.95' is invalid. a number from -0.9 to 0.9/,
    'a drift beyond the bound is refused',
  )
  t.equal((await lab.cli('clock', 'set', name)).code, 0)
  await lab.waitFor('the real clock again', async () => ((await clockOf()).drift === 0 ? true : undefined))
  t.equal((await lab.status()).processes.find((p) => p.name === name)!.clockSkew, null, 'cleared')
}

async function errorText(run: Promise<{ stderr: string }>): Promise<string> {
  return (await run).stderr
}

t.test('default two-site lab: up, kill -9, restart, partition/heal, pause/continue, crash report, down', async (t) => {
  const { lab, status } = await startLab(t)
  const names = status.processes.map((p) => p.name).sort()
  t.same(names, ['array-a', 'array-b', 'host-a1', 'host-a2', 'host-b1', 'host-b2', 'witness'], 'every process of the default topology')
  t.ok(status.lab.healthy, 'the lab reports healthy')
  t.equal(status.lab.clusterFormed, true, 'up --detach returned once the cluster formed')
  for (const h of ['host-a1', 'host-a2', 'host-b1', 'host-b2']) t.ok(status.cluster?.hosts[h]?.holds_lease, `${h} holds the quorum lease`)
  for (const p of status.processes) {
    t.equal(p.state, 'up', `${p.name} is up`)
    t.ok(p.pid && isAlive(p.pid), `${p.name} has a live pid`)
    t.same([...p.peers].sort(), [...p.expectedPeers].sort(), `${p.name} is connected to all its peers`)
    if (p.pid && existsSync(`/proc/${p.pid}/environ`)) {
      const env = readFileSync(`/proc/${p.pid}/environ`, 'utf8').split('\0')
      for (const [k, v] of Object.entries(ALLOCATOR_ENV)) t.ok(env.includes(`${k}=${v}`), `${p.name} runs with ${k}=${v}`)
      const argv = readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').split('\0')
      for (const arg of LAB_NODE_ARGS) t.ok(argv.includes(arg), `${p.name} runs with ${arg}`)
    }
  }
  // the CLI's status and events in JSON (the rest of the test reads the same objects from the control endpoint),
  // through the real binary: the other CLI calls run in this process
  const cliStatusRun = await lab.spawnCli('status', '--json')
  t.equal(cliStatusRun.code, 0, 'hvlab status --json exits 0')
  const cliStatus = JSON.parse(cliStatusRun.stdout) as LabStatus
  t.same(
    cliStatus.processes.map((p) => [p.name, p.role, p.site, p.state]),
    status.processes.map((p) => [p.name, p.role, p.site, 'up']),
    'hvlab status --json: name, role, site, state of every process',
  )
  // Nobody read status for longer than the controller polls after a read (5 s) and than a
  // refresh counts as fresh (2 s): the next read waits for a refresh (lab-controller.ts
  // currentStatus) rather than show what the processes said 4 s or more ago.
  await new Promise((r) => setTimeout(r, 9_000))
  const asked_ms = Date.now()
  const quiet = await lab.status()
  const age_ms = asked_ms - (quiet.cluster?.refreshed_ms ?? 0)
  t.ok(age_ms <= 2_000, `a status read after a quiet spell carries a fresh cluster status (refreshed ${age_ms} ms before it was asked)`)
  t.equal(quiet.lab.clusterFormed, true, 'and still shows the cluster formed')
  const cliEvents = await lab.spawnCli('events', '--json')
  const started = cliEvents.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { kind: string; details: { process?: string } })
  t.equal(
    started.filter((e) => e.kind === 'process.started').length,
    7,
    'hvlab events --json: a process.started event for each of the seven processes',
  )
  const hostA1 = status.processes.find((p) => p.name === 'host-a1')!
  t.same(hostA1.expectedPeers.sort(), ['array-a', 'array-b', 'host-a2', 'host-b1', 'host-b2', 'witness'])

  // metrics endpoint with default process metrics and transport metrics
  const metrics = await (await fetch(`http://127.0.0.1:${hostA1.metricsPort}/metrics`)).text()
  t.match(metrics, /hvlab_process_cpu_seconds_total/, 'default process metrics')
  t.match(metrics, /hvlab_transport_peers_connected\{[^}]*\} \d/, 'transport metrics')
  const own = (await (await fetch(`http://127.0.0.1:${hostA1.metricsPort}/status`)).json()) as {
    name: string
    peers: string[]
    event_loop_lag?: { p50_ms: number; p99_ms: number; max_ms: number; samples: number; window_ms: number }
  }
  t.equal(own.name, 'host-a1', 'per-process status endpoint')
  await checkEventLoopLag(t, lab, metrics, own.event_loop_lag)

  // one hostile request to the control port (a request target `new URL` throws on, as a WebSocket
  // upgrade, without the token and with it) ends nothing: the controller and every process stay up
  const control = runningLab(lab.dir)
  const hostile = { target: 'http://x:99999/', upgrade: true }
  t.equal((await rawExchange(t, control.httpPort, requestBytes(hostile))).status, 401, 'hostile upgrade without the token: 401')
  t.equal(
    (await rawExchange(t, control.httpPort, requestBytes({ ...hostile, authorization: control.authorization }))).status,
    400,
    'with the token: 400',
  )
  t.ok(isAlive(lab.controllerPid()!), 'the controller is still up')
  const afterHostile = await lab.status()
  t.same(
    afterHostile.processes.map((p) => [p.name, p.state, p.pid]),
    status.processes.map((p) => [p.name, 'up', p.pid]),
    'every process is still up, the same pids',
  )
  t.ok(
    afterHostile.processes.every((p) => p.pid !== null && isAlive(p.pid)),
    'and alive',
  )

  // kill -9 one host: reported down in status and events, peers see it lost
  const killed = await lab.cli('kill', 'host-a1', '--signal', 'KILL')
  t.equal(killed.code, 0, 'kill accepted')
  const afterKill = await lab.waitFor('host-a1 down', async () => {
    const s = await lab.status()
    const p = s.processes.find((x) => x.name === 'host-a1')!
    const a2 = s.processes.find((x) => x.name === 'host-a2')!
    return p.state === 'down' && !a2.peers.includes('host-a1') ? s : undefined
  })
  const downA1 = afterKill.processes.find((p) => p.name === 'host-a1')!
  t.equal(downA1.lastExit?.signal, 'SIGKILL', 'status shows it was killed by SIGKILL')
  t.equal(downA1.pid, null, 'no pid while down')
  const statusText = (await lab.cli('status')).stdout
  t.match(statusText, /^host-a1: killed by SIGKILL \(hvlab kill\) \S+ ago/m, 'status text: why host-a1 is down')
  t.notOk(isAlive(hostA1.pid!), 'the old process is gone')
  t.notOk(afterKill.lab.healthy, 'the lab is not healthy with a host down')
  const events1 = await lab.events()
  t.ok(
    events1.some((e) => e.kind === 'process.exited' && e.details.process === 'host-a1' && e.details.signal === 'SIGKILL'),
    'events: host-a1 exited by SIGKILL',
  )
  t.ok(
    events1.some((e) => e.kind === 'peer.lost' && e.source === 'host-a2' && e.details.peer === 'host-a1'),
    'events: host-a2 lost host-a1',
  )

  // restart: it comes back with a new pid and reconnects to everyone
  const lastSeq = events1.at(-1)!.seq
  t.equal((await lab.cli('restart', 'host-a1')).code, 0, 'restart accepted')
  const healed = await lab.waitFor('lab healthy again', async () => {
    const s = await lab.status()
    return s.lab.healthy ? s : undefined
  })
  const upA1 = healed.processes.find((p) => p.name === 'host-a1')!
  t.not(upA1.pid, hostA1.pid, 'a new process')
  t.equal(upA1.starts, 2, 'started twice')
  t.same([...upA1.peers].sort(), [...upA1.expectedPeers].sort(), 'reconnected to every peer')
  const upAgain = (e: LabEvent) => e.kind === 'process.up' && e.details.process === 'host-a1'
  const reconnected = (e: LabEvent) => e.kind === 'peer.connected' && e.source === 'host-b1' && e.details.peer === 'host-a1'
  const events2 = await lab.eventsAfter(lastSeq, (evs) => evs.some(upAgain) && evs.some(reconnected))
  t.ok(events2.some(upAgain), 'events: host-a1 up again')
  t.ok(events2.some(reconnected), 'events: host-b1 reconnected to host-a1')

  // partition and heal between sites (one lab for the whole runtime: every lab start costs CI time)
  t.equal((await lab.cli('partition', 'site-a', 'site-b')).code, 0)
  const cut = await lab.waitFor('site-a cut from site-b', async () => {
    const s = await lab.status()
    const a1 = s.processes.find((p) => p.name === 'host-a1')!
    const b1 = s.processes.find((p) => p.name === 'host-b1')!
    return !a1.peers.some((p) => p.startsWith('host-b') || p === 'array-b') &&
      !b1.peers.some((p) => p.startsWith('host-a') || p === 'array-a')
      ? s
      : undefined
  })
  const a1 = cut.processes.find((p) => p.name === 'host-a1')!
  t.ok(a1.peers.includes('witness') && a1.peers.includes('host-a2'), 'site-a still reaches the witness and its own site')
  t.same(a1.blocked, ['array-b', 'host-b1', 'host-b2'], 'host-a1 is blocked from site-b')
  t.equal((await lab.cli('heal')).code, 0)
  await lab.waitFor('all connected again', async () => {
    const s = await lab.status()
    return s.processes.every((p) => p.peers.length === p.expectedPeers.length) ? s : undefined
  })
  t.pass('healed')
  await checkLinkFaults(t, lab)

  // SIGSTOP pauses a process: shown paused, peers lose it; SIGCONT brings it back
  await lab.cli('kill', 'host-b2', '--signal', 'STOP')
  await lab.waitFor('host-b2 paused and lost by its peers', async () => {
    const s = await lab.status()
    return s.processes.find((p) => p.name === 'host-b2')!.state === 'paused' &&
      !s.processes.find((p) => p.name === 'host-b1')!.peers.includes('host-b2')
      ? s
      : undefined
  })
  t.pass('paused host-b2 is lost by host-b1 (liveness probe: an idle link is pinged every 30 s, a peer waited on is cut after 3 s)')
  t.match(
    (await lab.cli('status')).stdout,
    /^host-b2\s+host\s+site-b\s+paused\s+\d+\s+\S+\s+paused\s/m,
    'status text: no stale peers for it',
  )
  await lab.cli('kill', 'host-b2', '--signal', 'CONT')
  await lab.waitFor('host-b2 back', async () => {
    const s = await lab.status()
    return s.lab.healthy ? s : undefined
  })
  t.pass('continued host-b2 reconnects')

  // a process that dies by itself (killed from outside the lab) is reported, not restarted
  const witness = healed.processes.find((p) => p.name === 'witness')!
  process.kill(witness.pid!, 'SIGKILL')
  const crashed = await lab.waitFor('witness reported crashed', async () => {
    const s = await lab.status()
    const w = s.processes.find((p) => p.name === 'witness')!
    return w.state === 'down' ? w : undefined
  })
  t.equal(crashed.lastExit?.requested, false, 'the lab did not ask for it')
  t.ok((crashed.lastExit?.lastLogLines.length ?? 0) > 0, 'the report carries its last log lines')
  const crashEvent = (await lab.events()).find((e) => e.kind === 'process.crashed' && e.details.process === 'witness')
  t.ok(crashEvent, 'events: process.crashed for the witness')
  await new Promise((r) => setTimeout(r, 1000))
  t.equal((await lab.status()).processes.find((p) => p.name === 'witness')!.state, 'down', 'not silently restarted')

  // bad input: clear errors, the lab keeps running (the first two through the real binary: its error paths)
  const unknown = await lab.spawnCli('kill', 'host-z9')
  t.not(unknown.code, 0, 'unknown process refused')
  t.match(unknown.stderr, /no process named host-z9; known: host-a1/)
  const badSignal = await lab.spawnCli('kill', 'host-b1', '--signal', 'HUP')
  t.not(badSignal.code, 0, 'unknown signal refused')
  t.match(badSignal.stderr, /Allowed choices are KILL, TERM, STOP, CONT/)
  const notRunning = await lab.cli('kill', 'witness')
  t.match(notRunning.stderr, /witness is not running; `hvlab restart witness` starts it/)
  t.match(
    (await lab.cli('kill', '--site', 'site-c')).stderr,
    /no process of site site-c can take SIGKILL now/,
    'a site whose processes are all down: nothing to kill',
  )
  const badPartition = await lab.cli('partition', 'site-a', 'site-q')
  t.match(badPartition.stderr, /site-q is neither a process nor a site/)
  t.equal((await lab.status()).processes.filter((p) => p.state === 'up').length, 6, 'the rest of the lab kept running')

  await checkClockSkew(t, lab)

  t.same(await lab.protocolRefusals(), [], "no process refused a peer's frame, through kill -9, restart, partition and pause")

  // down leaves no process behind
  const controllerPid = lab.controllerPid()!
  const pids = [controllerPid, ...(await lab.status()).processes.map((p) => p.pid).filter((p): p is number => p !== null)]
  t.equal((await lab.cli('down')).code, 0, 'down succeeded')
  await lab.waitFor('every process gone', async () => (pids.every((p) => !isAlive(p)) ? true : undefined), 15_000)
  t.ok(
    pids.every((p) => !isAlive(p)),
    'no process left behind',
  )
  const after = await lab.cli('status')
  t.match(after.stderr, /no lab is running/, 'status after down says so')

  // the timeline after down, read from the data dir's events files, with the same filters
  const stopped = await lab.cli('events', '--json', '--source', 'lab', '--kind', 'process.crashed,process.exited')
  t.equal(stopped.code, 0, 'events after down')
  t.match(stopped.stderr, /no lab is running in .*; read its timeline from \d+ events file/)
  const exits = stopped.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LabEvent)
  t.ok(
    exits.some((e) => e.kind === 'process.crashed' && e.details.process === 'witness'),
    'the witness crash is there',
  )
  t.ok(
    exits.every((e) => e.source === 'lab' && (e.kind === 'process.crashed' || e.kind === 'process.exited')),
    'only what the filters select',
  )
  const tail = await lab.cli('events', '--json', '--tail', '1')
  t.equal(JSON.parse(tail.stdout).kind, 'lab.stopped', 'the last event: the lab stopped')

  // reset deletes the stopped lab's data dir
  const reset = await lab.cli('reset', '--yes')
  t.equal(reset.code, 0, reset.stderr)
  t.match(reset.stdout, /removed: .*data\/ \(array-a, array-b, host-a1/)
  t.notOk(existsSync(lab.dir), 'nothing of the lab is left')
})
