/**
 * Initial replication by offline media (seed 004: "send initial copy using external
 * media"): the host running the VM exports its disk to a file in a folder, someone carries
 * it to the replica server, which imports it; the primary then sends only the blocks that
 * differ (primary-resync.ts). Only blocks that hold data are written, as a sparse virtual
 * disk keeps only its used blocks.
 *
 * The file:
 *   one JSON line: the header (the VM, its disk's geometry, its memory, who exported it and when)
 *   parts, each u32 LE length · a part body as shipments carry it (shipment-frames.ts)
 *   u32 LE 0 · 32 bytes: the SHA-256 of everything before it
 * It is written under a temp name, synced and renamed, so a half-written export is never
 * found under its name; the import checks the hash over the whole file before it applies
 * anything, so a truncated or altered file changes nothing.
 */
import { createHash, type Hash } from 'node:crypto'
import { open, rename, type FileHandle } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { z } from 'zod'
import { syncDirectory } from '../../shared/durable-json.js'
import { HvlabError } from '../../shared/errors.js'
import { field } from '../../shared/protocol/define.js'
import { replicatedVmShape } from '../../shared/protocol/replica-messages.js'
import type { PrimaryDisk } from './primary-resync.js'
import { RESYNC_READ_BLOCKS } from './primary-resync.js'
import type { ShippedBlock } from './replica-log.js'
import { blocksPerPart, decodeBody, encodeBody } from './shipment-frames.js'

const FORMAT = 'hvlab-replica-export'
const HEADER_BYTES_MAX = 4096
const LENGTH_BYTES = 4
const HASH_BYTES = 32

const headerSchema = z.strictObject({
  format: z.literal(FORMAT),
  version: z.literal(1),
  vm: field.name(),
  from: field.name(),
  ...replicatedVmShape(),
  exported_at_ms: field.time_ms(),
})
export type ExportHeader = z.infer<typeof headerSchema>

/** The export file of `vm` in folder `dir`. */
export const exportFileName = (dir: string, vm: string): string => join(dir, `${vm}.hvlab-replica-export`)

/** Writes `disk` (its blocks that hold data) to `path`, durably; resolves with the blocks written. */
export async function exportDisk(path: string, disk: PrimaryDisk, header: Omit<ExportHeader, 'format' | 'version'>): Promise<number> {
  const tmp = join(dirname(path), `.${basename(path)}.partial`)
  const fh = await open(tmp, 'w', 0o600)
  const hash = createHash('sha256')
  let written = 0
  try {
    await put(fh, hash, Buffer.from(`${JSON.stringify({ format: FORMAT, version: 1, ...header })}\n`))
    const per = blocksPerPart(disk.block_size_bytes)
    let part: ShippedBlock[] = []
    for (let first = 0; first < disk.blocks; first += RESYNC_READ_BLOCKS) {
      for (const b of usedBlocks(await disk.read(first, Math.min(RESYNC_READ_BLOCKS, disk.blocks - first)), first, disk.block_size_bytes)) {
        part.push(b)
        written++
        if (part.length === per) part = await putPart(fh, hash, part, disk.block_size_bytes)
      }
    }
    if (part.length > 0) await putPart(fh, hash, part, disk.block_size_bytes)
    const end = Buffer.alloc(LENGTH_BYTES)
    await put(fh, hash, end)
    await fh.write(hash.digest())
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  await syncDirectory(dirname(path))
  return written
}

/**
 * Reads an export file: checks its hash over the whole file first, then hands each part's
 * blocks to `apply`, in order. Refused (HVLAB_E_USAGE, nothing applied) when it is not an
 * export, is truncated or altered, or its blocks lie past its disk.
 */
export async function readExport(
  path: string,
  accept: (h: ExportHeader) => void,
  apply: (blocks: ShippedBlock[]) => Promise<void>,
): Promise<ExportHeader> {
  const fh = await openExport(path)
  try {
    const size = (await fh.stat()).size
    if (size < LENGTH_BYTES + HASH_BYTES + 2) throw notAnExport(path, 'it is too short')
    await checkHash(fh, size, path)
    const { header, at } = await readHeader(fh, path)
    accept(header)
    await readParts(fh, at, size - HASH_BYTES, header, path, apply)
    return header
  } finally {
    await fh.close()
  }
}

function usedBlocks(data: Uint8Array, first: number, block_size_bytes: number): ShippedBlock[] {
  const out: ShippedBlock[] = []
  for (let i = 0; i * block_size_bytes < data.length; i++) {
    const block = data.subarray(i * block_size_bytes, (i + 1) * block_size_bytes)
    if (block.some((byte) => byte !== 0)) out.push({ block: first + i, data: block })
  }
  return out
}

async function putPart(fh: FileHandle, hash: Hash, blocks: readonly ShippedBlock[], block_size_bytes: number): Promise<ShippedBlock[]> {
  const body = encodeBody(blocks, block_size_bytes)
  const length = Buffer.alloc(LENGTH_BYTES)
  length.writeUInt32LE(body.length)
  await put(fh, hash, length)
  await put(fh, hash, body)
  return []
}

async function put(fh: FileHandle, hash: Hash, bytes: Uint8Array): Promise<void> {
  hash.update(bytes)
  await fh.write(bytes)
}

async function openExport(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r')
  } catch (e) {
    throw new HvlabError(
      'HVLAB_E_USAGE',
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}; name the export file the primary wrote`,
      {
        cause: e,
      },
    )
  }
}

async function checkHash(fh: FileHandle, size: number, path: string): Promise<void> {
  const hash = createHash('sha256')
  const chunk = Buffer.alloc(1024 * 1024)
  for (let at = 0; at < size - HASH_BYTES;) {
    const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, size - HASH_BYTES - at), at)
    if (bytesRead === 0) throw notAnExport(path, 'it ended early')
    hash.update(chunk.subarray(0, bytesRead))
    at += bytesRead
  }
  const stored = Buffer.alloc(HASH_BYTES)
  await fh.read(stored, 0, HASH_BYTES, size - HASH_BYTES)
  if (!hash.digest().equals(stored)) throw notAnExport(path, 'its checksum does not match (truncated or altered)')
}

async function readHeader(fh: FileHandle, path: string): Promise<{ header: ExportHeader; at: number }> {
  const buf = Buffer.alloc(HEADER_BYTES_MAX)
  const { bytesRead } = await fh.read(buf, 0, HEADER_BYTES_MAX, 0)
  const end = buf.subarray(0, bytesRead).indexOf(0x0a)
  if (end < 0) throw notAnExport(path, 'it has no header line')
  let parsed: unknown
  try {
    parsed = JSON.parse(buf.subarray(0, end).toString('utf8'))
  } catch {
    throw notAnExport(path, 'its header is not JSON')
  }
  const header = headerSchema.safeParse(parsed)
  if (!header.success) throw notAnExport(path, `its header is not an export's (${header.error.issues[0]?.message ?? 'invalid'})`)
  return { header: header.data, at: end + 1 }
}

async function readParts(
  fh: FileHandle,
  from: number,
  end: number,
  h: ExportHeader,
  path: string,
  apply: (blocks: ShippedBlock[]) => Promise<void>,
): Promise<void> {
  const length = Buffer.alloc(LENGTH_BYTES)
  const body_max = LENGTH_BYTES + blocksPerPart(h.block_size_bytes) * (LENGTH_BYTES + h.block_size_bytes)
  for (let at = from; ;) {
    if (at + LENGTH_BYTES > end) throw notAnExport(path, 'it ends inside a part')
    await fh.read(length, 0, LENGTH_BYTES, at)
    const n = length.readUInt32LE(0)
    at += LENGTH_BYTES
    if (n === 0) {
      if (at !== end) throw notAnExport(path, 'it goes on after its end')
      return
    }
    if (n > body_max || at + n > end) throw notAnExport(path, `a part of ${n} bytes does not fit`)
    const body = Buffer.alloc(n)
    await fh.read(body, 0, n, at)
    at += n
    const blocks = decodeBody(body, h.block_size_bytes, `export file ${path}`)
    const past = blocks.find((b) => b.block >= h.disk_blocks)
    if (past !== undefined) throw notAnExport(path, `block ${past.block} lies past its disk of ${h.disk_blocks} blocks`)
    await apply(blocks)
  }
}

const notAnExport = (path: string, why: string): HvlabError =>
  new HvlabError(
    'HVLAB_E_USAGE',
    `${path} is not a Replica export this server can import: ${why}. Export again with \`hvlab replica enable VM --initial export\``,
  )
