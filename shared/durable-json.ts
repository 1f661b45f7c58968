/**
 * A small JSON file replaced atomically and durably: write a temp file, fsync it, rename
 * it over the old one, fsync the directory. After a kill -9 at any moment the file holds
 * either the old or the new content, never a mix.
 */
import { open, readFile, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { HvlabError } from './errors.js'

/** Metadata files stay small; a bigger one is a bug, not data. */
export const DURABLE_JSON_BYTES_MAX = 4 * 1024 * 1024

export async function writeDurableJson(path: string, value: unknown): Promise<void> {
  const text = JSON.stringify(value, null, 1)
  if (Buffer.byteLength(text) > DURABLE_JSON_BYTES_MAX) {
    throw new HvlabError('HVLAB_E_INTERNAL', `${basename(path)} would be over ${DURABLE_JSON_BYTES_MAX} bytes; refusing to write it`)
  }
  await writeDurableFile(path, text)
}

/** Replaces `path` atomically and durably (a temp file, synced, renamed over it, the folder synced). */
export async function writeDurableFile(path: string, content: string | Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`)
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(content)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, path)
  await syncDirectory(dirname(path))
}

/** The parsed file, or undefined when it does not exist yet. */
export async function readDurableJson(path: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
  try {
    return JSON.parse(text) as unknown
  } catch (e) {
    throw new HvlabError('HVLAB_E_INTERNAL', `${path} is not valid JSON (${(e as Error).message}); restore it from a backup or remove it`, {
      cause: e,
    })
  }
}

/** Makes a rename or a new file in `dir` durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}
