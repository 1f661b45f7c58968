/** Types of build.mjs for the TypeScript that imports it. */
export declare const ENTRIES: Readonly<Record<BundleName, string>>
export type BundleName =
  | 'cli'
  | 'controller'
  | 'host'
  | 'witness'
  | 'standalone'
  | 'array'
  | 'page-diff-worker'
  | 'page-apply-worker'
  | 'block-hash-worker'
  | 'bench'
  | 'bench-migration-endpoint'
  | 'bench-page-diff'
export declare const EXTERNAL_PACKAGES: readonly string[]
export declare function projectRoot(fromUrl?: string): string
export declare function sourceSnapshot(root: string): { newest_ms: number; files_sha1: string }
export declare function staleness(root?: string): string | null
export declare function build(root?: string): void
export declare function ensureBuilt(root?: string): void
export declare function bundlePath(name: BundleName, root?: string): string
