/**
 * What `hvlab` loads before it runs a command: the CLI's bundle and the chunks it imports
 * statically, as esbuild splits them (scripts/build/build.mjs). The wire protocol's and the
 * timeline's schemas, the topology and zod stay out of it: they cost a command about 0.15 s
 * of start-up, and the commands that need them (a request to a process, `events`, `vm create`)
 * load them with a dynamic import. Also: the zod-free constants the CLI's help shows are the
 * protocol's own.
 */
import { createRequire } from 'node:module'
import t from 'tap'
import { ENTRIES, EXTERNAL_PACKAGES, projectRoot } from '../../scripts/build/build.mjs'
import * as clusterLimits from '../../shared/protocol/cluster-limits.js'
import * as clusterMessages from '../../shared/protocol/cluster-messages.js'
import * as storageLimits from '../../shared/protocol/storage-limits.js'
import * as storageMessages from '../../shared/protocol/storage-messages.js'

interface Metafile {
  outputs: Record<string, { imports: { path: string; kind: string }[]; inputs: Record<string, unknown> }>
}

/** The CLI bundled as the build splits it, as esbuild's metafile. */
function cliMetafile(): Metafile {
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild')
  const result = esbuild.buildSync({
    absWorkingDir: projectRoot(),
    entryPoints: { cli: ENTRIES.cli },
    outdir: 'dist-startup-test',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    external: [...EXTERNAL_PACKAGES],
    write: false,
    metafile: true,
    logLevel: 'silent',
  })
  return result.metafile as Metafile
}

/** The source files in the outputs `from` loads, through imports of the given kinds. */
function sourcesLoaded(meta: Metafile, from: string, kinds: readonly string[]): Set<string> {
  const outputs = new Set<string>([from])
  for (const out of outputs)
    for (const i of meta.outputs[out]?.imports ?? []) if (kinds.includes(i.kind) && i.path in meta.outputs) outputs.add(i.path)
  return new Set([...outputs].flatMap((out) => Object.keys(meta.outputs[out]!.inputs)))
}

const HEAVY =
  /node_modules\/(zod|ws|msgpackr|pino|prom-client)\/|shared\/protocol\/[a-z-]+-messages\.ts|shared\/timeline\/events\.ts|shared\/topology\.ts/

t.test('the CLI starts without zod, the protocol, the timeline or the topology; its commands load them', async (t) => {
  const meta = cliMetafile()
  const entry = Object.keys(meta.outputs).find((o) => o.endsWith('/cli.js'))!
  const atStart = sourcesLoaded(meta, entry, ['import-statement'])
  t.ok(
    [...atStart].some((s) => s.includes('node_modules/commander/')),
    'the walk sees the bundled packages (commander)',
  )
  t.ok(atStart.has('scripts/cli/program.ts'), 'and the command definitions')
  t.same(
    [...atStart].filter((s) => HEAVY.test(s)),
    [],
    'nothing heavy is loaded at start-up',
  )
  const whenNeeded = sourcesLoaded(meta, entry, ['import-statement', 'dynamic-import'])
  for (const needed of ['node_modules/zod/', 'shared/protocol/messages.ts', 'shared/timeline/events.ts', 'shared/topology.ts'])
    t.ok(
      [...whenNeeded].some((s) => s.includes(needed)),
      `${needed} is still loaded by the commands that need it`,
    )
})

t.test('the limits the CLI shows are the ones the protocol checks', async (t) => {
  t.same(clusterLimits.ROLE_PRIORITIES, clusterMessages.ROLE_PRIORITIES)
  t.equal(clusterLimits.VM_DISK_IOPS_MAX, clusterMessages.VM_DISK_IOPS_MAX)
  t.equal(clusterLimits.GUEST_HANG_MS_MAX, clusterMessages.GUEST_HANG_MS_MAX)
  for (const name of ['BLOCKS_PER_IO_MAX', 'DIGEST_BLOCKS_MAX', 'RC_MODES', 'RC_WRITE_ERROR_POLICIES'] as const)
    t.equal(storageLimits[name], storageMessages[name], `${name} is storage-messages.ts's own`)
})
