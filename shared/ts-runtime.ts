/**
 * hvlab runs its TypeScript directly with tsx. A spawned lab process gets the same
 * loader through these node arguments, wherever the user's current directory is.
 */
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)

export const TS_LOADER_ARGS: readonly string[] = ['--import', pathToFileURL(require.resolve('tsx')).href]
