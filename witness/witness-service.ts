/**
 * The file-share witness process's shell around the Arbiter: its record (newest epochs
 * seen, promises, the lease it confirmed) lives in witness.json in its data dir and is
 * written durably before any reply that depends on it, so a kill -9 and restart lose
 * nothing. GET /status shows the record and which coordinator holds the witness's vote.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { parseAcceptorRecord } from '../shared/consensus/acceptor-record.js'
import { attachClusterMessages, sendIfConnected, sentByConnectedPeer } from '../shared/consensus/cluster-link.js'
import { readDurableJson, writeDurableJson } from '../shared/durable-json.js'
import { describeError } from '../shared/errors.js'
import { flattenEventDetails } from '../shared/timeline/flatten.js'
import type { LabProcess } from '../shared/lab-process.js'
import { clusterDriver, timerOn } from '../shared/machine/cluster-driver.js'
import type { ClusterMessage } from '../shared/protocol/cluster-messages.js'
import { Arbiter, type ArbiterRecord } from './arbiter.js'
import { arbiterConfig } from './arbiter-config.js'

export const WITNESS_RECORD_FILE = 'witness.json'

export async function startWitness(p: LabProcess): Promise<Arbiter> {
  const log = p.log.child({ component: 'arbiter' })
  const dir = p.layout.processData(p.name)
  await mkdir(dir, { recursive: true })
  const file = join(dir, WITNESS_RECORD_FILE)
  const raw = await readDurableJson(file)
  const config = arbiterConfig(p.topology, p.name)
  const arbiter = new Arbiter(config, p.clock.now(), raw === undefined ? undefined : parseAcceptorRecord(raw, file))
  if (raw !== undefined) p.emitEvent('witness.restored', { epoch: arbiter.record().committed_epoch, db_epoch: arbiter.record().db_epoch })
  /** The coordinator whose quorum lease the witness confirmed last: the holder of its vote. */
  let lease_holder: string | null = null
  const runner = clusterDriver<ArbiterRecord>(
    (input) => arbiter.step(input, p.clock.now()),
    {
      armTimer: timerOn(p.clock),
      send: (to, m) => {
        if (m.t === 'cluster-lease-ack') lease_holder = to
        sendIfConnected(p, to, m)
      },
      persist: (record) => writeDurableJson(file, record),
      emit: (e) => p.emitEvent(e.kind, flattenEventDetails(e.details)),
      onTimer: () => {},
      onFatal: (e) => {
        log.fatal({ err: describeError(e) }, 'cannot write the witness record; stopping so it breaks no promise it made')
        process.exit(1)
      },
    },
    { bound: { batches_max: p.topology.limits.cluster_inputs_queued_max, log }, defer_start: true },
  )
  const receive = (m: ClusterMessage, from: string): void => {
    if (!sentByConnectedPeer(m, from, log)) return
    if (!runner.admits()) return
    runner.feed({ kind: 'message', message: m })
  }
  // Only the cluster's hosts ask the witness (the role is proved in the handshake).
  p.onPeer((conn) => {
    if (p.isClusterPeer(conn)) attachClusterMessages(conn, receive)
  })
  p.addStatus(() => {
    const r = arbiter.record()
    const now = p.clock.now()
    const holds = r.lease_epoch > 0 && r.lease_epoch === r.committed_epoch && now < r.lease_until_ms
    return {
      witness: {
        committed_epoch: r.committed_epoch,
        db_epoch: r.db_epoch,
        lease_epoch: r.lease_epoch,
        lease_until_ms: r.lease_until_ms,
        vote_holder: holds ? lease_holder : null,
      },
    }
  })
  return arbiter
}
