/**
 * Large buffers let go (a VM's guest memory when it stops or leaves, a migration's copy of
 * the pages it sent) are freed only when the main isolate collects them, and V8 does not
 * count a SharedArrayBuffer's memory as pressure: a host's heap stays small, no collection
 * comes, and its resident memory stays as high as the largest set of VMs it ever held
 * (measured: 4 × 64 MiB VMs drained off a host left it at 640 MiB for minutes; a forced
 * collection brought it to 250 MiB). So whoever drops one calls `largeBuffersReleased()`,
 * and one full collection runs a moment after the last such call — in the lab's processes,
 * which the controller starts with `--expose-gc`; elsewhere (tests) it does nothing.
 */

/** How long after the last release the collection waits (so a drain of many VMs costs one). */
export const RELEASE_COLLECT_AFTER_MS = 1_000

let pending: NodeJS.Timeout | null = null

export function largeBuffersReleased(): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (typeof gc !== 'function') return
  if (pending) clearTimeout(pending)
  pending = setTimeout(() => {
    pending = null
    gc()
  }, RELEASE_COLLECT_AFTER_MS)
  pending.unref()
}
