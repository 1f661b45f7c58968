/**
 * The disk write record (what each block a VM's disk writes holds) and the history
 * checker: round trip, torn/foreign/empty blocks, lost acknowledged writes, invented
 * writes; and the production block I/O port's requests over a (fake) mesh connection.
 */
import t from 'tap'
import { checkAckedWrites, decodeDiskWrite, encodeDiskWrite, nextWriteSeq, type DiskWriteRecord } from '../../agent/vm/disk-write-record.js'
import { meshBlockIoPort } from '../../agent/vm/vm-disk.js'
import type { Message } from '../../shared/protocol/messages.js'

const BS = 4096

t.test('a record round-trips; a torn, foreign or empty block is told apart', async (t) => {
  const r: DiskWriteRecord = { vm: 'web-01', seq: 2 ** 40 + 3, epoch: 17, block: 4095, value: 0xdeadbeef }
  const b = encodeDiskWrite(r, BS)
  t.equal(b.length, BS)
  t.same(decodeDiskWrite(b), { kind: 'record', record: r })
  t.same(
    decodeDiskWrite(encodeDiskWrite({ ...r, seq: 0, value: 0 }, 512)),
    { kind: 'record', record: { ...r, seq: 0, value: 0 } },
    'smallest block size',
  )
  const torn = Buffer.from(b)
  torn.fill(0, 2048) // second half never made it
  t.match(decodeDiskWrite(torn), { kind: 'foreign', reason: /checksum/ })
  const flipped = Buffer.from(b)
  flipped[100] = flipped[100]! ^ 1
  t.match(decodeDiskWrite(flipped), { kind: 'foreign', reason: /checksum/ })
  t.match(decodeDiskWrite(Buffer.alloc(BS, 7)), { kind: 'foreign', reason: /header/ })
  t.same(decodeDiskWrite(Buffer.alloc(BS)), { kind: 'empty' })
  t.not(
    encodeDiskWrite({ ...r, seq: 1 }, BS)
      .subarray(100, 200)
      .toString('hex'),
    encodeDiskWrite({ ...r, seq: 2 }, BS)
      .subarray(100, 200)
      .toString('hex'),
    'the fill differs per write',
  )
  t.throws(() => encodeDiskWrite(r, 100), { code: 'HVLAB_E_USAGE' })
  t.throws(() => encodeDiskWrite({ ...r, vm: 'x'.repeat(65) }, BS), { code: 'HVLAB_E_USAGE' })
})

t.test('the checker: acked writes present, lost ones and invented ones reported', async (t) => {
  const disk = new Map<number, Uint8Array>()
  const put = (r: DiskWriteRecord) => disk.set(r.block, encodeDiskWrite(r, BS))
  const read = async (block: number) => disk.get(block) ?? new Uint8Array(BS)
  const w = (seq: number, block: number, epoch = 5): DiskWriteRecord => ({ vm: 'vm1', seq, epoch, block, value: seq * 3 })
  const acked = [w(0, 0), w(1, 1), w(2, 2), w(4, 0)]
  for (const r of [w(0, 0), w(1, 1), w(2, 2), w(4, 0)]) put(r)
  put(w(3, 3)) // issued, never acked: may be there
  t.same(await checkAckedWrites({ vm: 'vm1', acked, issued_through_seq: 4 }, read), [], 'consistent')

  put(w(6, 1)) // a newer write (issued through 6) on block 1 is fine
  t.same(await checkAckedWrites({ vm: 'vm1', acked, issued_through_seq: 6 }, read), [])
  t.match(await checkAckedWrites({ vm: 'vm1', acked, issued_through_seq: 4 }, read), [
    /block 1: holds seq 6, which the writer never issued/,
  ])

  put(w(0, 0)) // block 0 went back to the older write: the ack of seq 4 was lost
  disk.delete(2)
  const problems = await checkAckedWrites({ vm: 'vm1', acked, issued_through_seq: 6 }, read)
  t.match(problems, [/block 0: holds seq 0, older than acked seq 4/, /block 2: acked write seq 2 is missing \(block is all zeros\)/])

  put(w(2, 2, 9))
  t.match(await checkAckedWrites({ vm: 'vm1', acked: [w(2, 2)], issued_through_seq: 6 }, read), [/seq 2 has epoch 9 .* acked with epoch 5/])
  put({ ...w(2, 2), vm: 'other' })
  t.match(await checkAckedWrites({ vm: 'vm1', acked: [w(2, 2)], issued_through_seq: 6 }, read), [/holds vm other's write/])
})

t.test('the mesh port sends block-write with the data as attachment and block-read, and says when there is no connection', async (t) => {
  const sent: { message: Message; attachment?: Uint8Array | undefined; timeout_ms?: number | undefined }[] = []
  const conn = {
    request: async (message: Message, o: { attachment?: Uint8Array; timeout_ms?: number } = {}) => {
      sent.push({ message, attachment: o.attachment, timeout_ms: o.timeout_ms })
      if (message.t === 'block-write')
        return { message: { t: 'block-written', volume: 'v', block: 3, blocks: 1 } as Message, attachment: Buffer.alloc(0) }
      return { message: { t: 'block-data', volume: 'v', block: 3, blocks: 1 } as Message, attachment: Buffer.alloc(BS, 9) }
    },
  }
  const port = meshBlockIoPort({ connection: (name) => (name === 'array-a' ? conn : undefined) }, 1234)
  const data = Buffer.alloc(BS, 1)
  await port.write('array-a', { volume: 'v', host: 'h1', epoch: 4, block: 3, blocks: 1 }, data)
  t.same(sent[0]?.message, { t: 'block-write', volume: 'v', host: 'h1', epoch: 4, block: 3, blocks: 1 })
  t.equal(sent[0]?.attachment, data)
  t.equal(sent[0]?.timeout_ms, 1234)
  t.same(await port.read('array-a', { volume: 'v', host: 'h1', block: 3, blocks: 1 }), Buffer.alloc(BS, 9))
  t.same(sent[1]?.message, { t: 'block-read', volume: 'v', host: 'h1', block: 3, blocks: 1 })
  await t.rejects(port.write('array-b', { volume: 'v', host: 'h1', epoch: 4, block: 3, blocks: 1 }, data), {
    code: 'HVLAB_E_CLOSED',
    message: /no connection to array array-b/,
  })
  const wrong = meshBlockIoPort({
    connection: () => ({ request: async () => ({ message: { t: 'ok' } as Message, attachment: Buffer.alloc(0) }) }),
  })
  await t.rejects(wrong.write('array-a', { volume: 'v', host: 'h1', epoch: 4, block: 3, blocks: 1 }, data), { code: 'HVLAB_E_PROTOCOL' })
})

t.test('a VM started on a disk holding its earlier writes goes on past the newest of its own', async (t) => {
  const bs = 512
  const block = (vm: string, seq: number) => encodeDiskWrite({ vm, seq, epoch: 1, block: seq % 4, value: 7 }, bs)
  const torn = block('web1', 99)
  torn[200] = (torn[200] ?? 0) ^ 1
  t.equal(nextWriteSeq('web1', [new Uint8Array(bs), block('web1', 3), block('web1', 12), block('web2', 40), torn]), 13)
  t.equal(nextWriteSeq('web1', [new Uint8Array(bs), block('web2', 5)]), 0, 'none of its own: from 0')
})
