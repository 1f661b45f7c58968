/**
 * Cluster Shared Volumes with real processes (seed 003_*): a CSV on array-a, two regions,
 * writes from two hosts at once; host-b1 partitioned from array-a goes Redirected through
 * the coordinator node and its writes still land (read back elsewhere), heal → Direct;
 * kill -9 of the coordinator node → a survivor takes over and I/O and allocation continue.
 * A VM on the CSV (`vm create --storage csv:v1`): its guest's disk writes land in its
 * region, keep landing (redirected) while its host has no path to the array, and a move to
 * another node changes nothing on the storage. A coordinator node partitioned from the
 * array hands the CSV to a node that has a path.
 */
import t from 'tap'
import { csvListing, type CsvListing } from '../../scripts/cli/csv-commands.js'
import { startLab } from './lab-fixture.js'

interface DiskView {
  host: string
  disk: { array: string; volume: string; state: string; writes_acked: number; writes_refused: number } | null
}

interface IoReply {
  host: string
  path: 'direct' | 'redirected'
  via: string | null
  sha256: string
}

t.test('CSV: direct and redirected I/O, coordinator takeover', async (t) => {
  const { lab } = await startLab(t)
  // polled in-process (a CLI process per poll costs a CPU second); the first listing goes through the CLI
  const list = (): Promise<CsvListing> => csvListing(lab.control())
  await lab.waitFor('quorum', async () => ((await lab.status()).cluster?.hosts['host-a1']?.holds_lease ? true : undefined), 60_000)

  const created = await lab.waitFor(
    'csv create',
    async () => {
      const r = await lab.cli('csv', 'create', 'v1', '--array', 'array-a', '--size-gib', '1', '--json')
      return r.code === 0 ? (JSON.parse(r.stdout) as { owner: string; volume: string }) : undefined
    },
    60_000,
  )
  t.equal(created.volume, 'csv-v1')
  const owner0 = created.owner

  const r1 = await lab.json<{ allocation: { offset_block: number; blocks: number } }>(
    'csv',
    'allocate',
    'v1',
    '--region',
    'vm1',
    '--size-mib',
    '4',
  )
  const r2 = await lab.json<{ allocation: { offset_block: number; blocks: number } }>(
    'csv',
    'allocate',
    'v1',
    '--region',
    'vm2',
    '--size-mib',
    '4',
  )
  t.ok(
    r1.allocation.offset_block + r1.allocation.blocks <= r2.allocation.offset_block ||
      r2.allocation.offset_block + r2.allocation.blocks <= r1.allocation.offset_block,
    'regions do not overlap',
  )

  const write = (host: string, region: string, pattern: string, block = 0): Promise<IoReply> =>
    lab.json<IoReply>(
      'csv',
      'write',
      'v1',
      '--region',
      region,
      '--host',
      host,
      '--block',
      String(block),
      '--blocks',
      '4',
      '--pattern',
      pattern,
    )
  const read = (host: string, region: string, block = 0): Promise<IoReply> =>
    lab.json<IoReply>('csv', 'read', 'v1', '--region', region, '--host', host, '--block', String(block), '--blocks', '4')

  // Two hosts write at once, each into its own region; each reads the other's.
  const [wa, wb] = await Promise.all([write('host-a2', 'vm1', 's1'), write('host-b1', 'vm2', 's2')])
  t.equal(wa.path, 'direct')
  t.equal(wb.path, 'direct')
  t.equal((await read('host-b1', 'vm1')).sha256, wa.sha256, 'host-b1 reads what host-a2 wrote')
  t.equal((await read('host-a2', 'vm2')).sha256, wb.sha256, 'host-a2 reads what host-b1 wrote')
  let l = await lab.json<CsvListing>('csv', 'list')
  t.equal(l.csvs[0]?.owner, owner0)
  t.same(
    Object.values(l.csvs[0]!.nodes).map((n) => n.mode),
    ['Direct', 'Direct', 'Direct', 'Direct'],
    'every node Direct',
  )

  // A VM whose disk is a region of the CSV, on host-b1, writing its disk.
  const created1 = await lab.cli('vm', 'create', 'db1', '--memory-mib', '64', '--preferred', 'host-b1', '--storage', 'csv:v1')
  t.equal(created1.code, 0, `vm create --storage csv:v1: ${created1.stderr}`)
  t.match(
    (await lab.cli('vm', 'deps', 'db1')).stdout,
    /region db1 \(16\.0 MiB\) of Cluster Shared Volume v1[\s\S]*volume csv-v1 on array array-a/,
    'vm deps shows the CSV',
  )
  t.equal((await lab.cli('vm', 'start', 'db1')).code, 0, 'vm start db1')
  await lab.waitFor(
    'db1 running',
    async () => ((await lab.vmList()).roles.find((r) => r.name === 'db1' && r.state === 'running') ? true : undefined),
    60_000,
  )
  t.equal((await lab.cli('vm', 'load', 'db1', '--disk-iops', '40')).code, 0, 'vm load db1 --disk-iops 40')
  const diskAcked = (host: string, after: number) =>
    lab.waitFor(
      `db1's disk writes acked from ${host} (> ${after})`,
      async () => {
        const v = await lab.vmInspect('db1') // a failed poll is retried by waitFor (and named if it times out)
        return v?.host === host && v.disk?.state === 'writing' && v.disk.writes_acked > after ? v.disk : undefined
      },
      60_000,
    )
  const d0 = await diskAcked('host-b1', 0)
  t.same([d0.array, d0.volume, d0.writes_refused], ['array-a', 'csv-v1', 0], 'the guest writes the CSV volume on array-a')

  // host-b1 loses its path to array-a: redirected through the coordinator node, and it lands.
  t.equal((await lab.cli('partition', 'host-b1', 'array-a')).code, 0)
  const red = await lab.waitFor(
    'a redirected write from host-b1',
    async () => {
      const w = await write('host-b1', 'vm2', 's3', 4)
      return w.path === 'redirected' ? w : undefined
    },
    60_000,
  )
  t.equal(red.via, owner0 === 'host-b1' ? null : owner0, 'redirected via the coordinator node')
  t.equal((await read('host-a1', 'vm2', 4)).sha256, red.sha256, 'the redirected write is on the array (read direct by host-a1)')
  const redRead = await read('host-b1', 'vm2', 4)
  t.equal(redRead.path, 'redirected')
  t.equal(redRead.sha256, red.sha256, 'host-b1 reads it back, redirected')
  l = await list()
  t.equal(l.csvs[0]?.nodes['host-b1']?.mode, 'Redirected')
  t.equal(l.csvs[0]?.nodes['host-b1']?.reason, 'NoDiskConnectivity')
  t.ok((l.csvs[0]?.nodes['host-b1']?.bytes_redirected ?? 0) > 0, 'redirected bytes counted')
  const now = await diskAcked('host-b1', 0)
  const d1 = await diskAcked('host-b1', now.writes_acked + 20)
  t.equal(d1.writes_refused, 0, "the VM's disk writes keep landing while its host has no path (redirected)")

  // Heal: host-b1 goes back to Direct by itself.
  t.equal((await lab.cli('heal')).code, 0)
  await lab.waitFor(
    'host-b1 Direct again',
    async () => ((await list()).csvs[0]?.nodes['host-b1']?.mode === 'Direct' ? true : undefined),
    60_000,
  )
  t.equal((await write('host-b1', 'vm2', 's4', 8)).path, 'direct')

  // The VM moves to another node: nothing changes on the storage, its disk keeps writing the CSV.
  const seq = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  const mv = await lab.cli('vm', 'move', 'db1', '--to', 'host-a1', '--quick')
  t.equal(mv.code, 0, `quick move of db1 to host-a1: ${mv.stderr}`)
  t.equal((await lab.cli('vm', 'load', 'db1', '--disk-iops', '40')).code, 0)
  const d2 = await diskAcked('host-a1', 0)
  t.same([d2.array, d2.volume], ['array-a', 'csv-v1'], 'on host-a1 it writes the same CSV volume')
  t.notOk(
    (await lab.events()).some((e) => e.seq > seq && e.kind.startsWith('clx.')),
    'no storage failover or switchover for a VM on a CSV',
  )

  // Operator move; then the coordinator node loses its own path to the array: it hands the
  // CSV to the first node that has one, and I/O (direct, and redirected through the new
  // coordinator) carries on.
  const moved = await lab.json<{ owner: string }>('csv', 'move', 'v1', '--to', 'host-a2')
  t.equal(moved.owner, 'host-a2')
  const seqCut = Math.max(0, ...(await lab.events()).map((e) => e.seq))
  t.equal((await lab.cli('partition', 'host-a2', 'array-a')).code, 0)
  const handed = await lab.waitFor(
    'the coordinator handed off by host-a2',
    async () => {
      const o = (await list()).csvs[0]?.owner
      return o !== undefined && o !== 'host-a2' ? o : undefined
    },
    60_000,
  )
  t.equal(handed, 'host-a1', "to the next node in the array's site, which has a path")
  // the event comes from host-a2 once its commit returns, which may be after `csv list` shows the new owner
  const handOff = await lab.waitFor(
    'the hand-off event',
    async () => (await lab.events()).find((e) => e.seq > seqCut && e.kind === 'csv.coordinator-moved' && e.details.from === 'host-a2'),
    10_000,
  )
  t.match(handOff.details, { csv: 'v1', to: 'host-a1', reason: /host-a2 lost its path to array-a/ }, 'csv.coordinator-moved says why')
  const w6 = await write('host-b2', 'vm1', 's6', 16)
  t.equal(w6.path, 'direct')
  const r6 = await read('host-a2', 'vm1', 16)
  t.match(r6, { path: 'redirected', via: 'host-a1', sha256: w6.sha256 }, 'the old coordinator node reads through the new one')
  t.equal((await lab.cli('heal')).code, 0)
  await lab.waitFor(
    'host-a2 Direct again',
    async () => ((await list()).csvs[0]?.nodes['host-a2']?.mode === 'Direct' ? true : undefined),
    60_000,
  )

  // Operator move back, then kill -9 of the coordinator node: a survivor takes over.
  t.equal((await lab.json<{ owner: string }>('csv', 'move', 'v1', '--to', 'host-a2')).owner, 'host-a2')
  t.equal((await lab.cli('kill', 'host-a2')).code, 0)
  const owner1 = await lab.waitFor(
    'a new coordinator node',
    async () => {
      const o = (await list()).csvs[0]?.owner
      return o !== undefined && o !== 'host-a2' ? o : undefined
    },
    120_000,
  )
  t.equal(owner1, 'host-a1', "the next node in the array's site takes over")
  const w5 = await write('host-b2', 'vm1', 's5', 12)
  t.equal((await read('host-a1', 'vm1', 12)).sha256, w5.sha256, 'I/O continues after the takeover')
  const r3 = await lab.waitFor(
    'allocation through the new coordinator',
    async () => {
      const r = await lab.cli('csv', 'allocate', 'v1', '--region', 'vm3', '--size-mib', '4', '--json')
      return r.code === 0 ? (JSON.parse(r.stdout) as { owner: string }) : undefined
    },
    60_000,
  )
  t.equal(r3.owner, 'host-a1')

  // the coordinator reports the takeover on its next reconcile (every 500 ms), which may come after the new owner shows in `csv list`
  const kinds = await lab.waitFor(
    'the csv.coordinator-moved event for the takeover',
    async () => {
      const k = (await lab.events()).map((e) => `${e.kind}:${String(e.details.node ?? e.details.to ?? '')}`)
      return k.includes('csv.coordinator-moved:host-a1') ? k : undefined
    },
    10_000,
  )
  t.ok(kinds.includes('csv.io-redirected:host-b1'), 'csv.io-redirected event')
  t.ok(kinds.includes('csv.io-direct:host-b1'), 'csv.io-direct event')
  t.ok(kinds.includes('csv.coordinator-moved:host-a1'), 'csv.coordinator-moved event for the takeover')
})
