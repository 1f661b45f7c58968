/**
 * The write checker of a history (issue 13's soak, and the storage lab tests): given every
 * write issued to a volume's blocks, in issue order with whether and when it was
 * acknowledged, and what each block holds at the end, it finds the acknowledged writes
 * that were lost and the data that no write put there. A block must hold its last
 * acknowledged write, or a write issued after it that was never acknowledged (in doubt:
 * it may or may not have landed); never an older write, and a block never written holds
 * zeros. Some losses are what the configuration allows, reported and forgiven: under
 * asynchronous replication a failover may lose what was acknowledged within the promised
 * RPO before it (`rpo`), and a synchronous remote-copy group that kept taking writes while
 * its link was down (3PAR's no_fail_wrt_on_err) may lose those if the other side is failed
 * over to (`unprotected` writes). Any other loss is a breach.
 */

export interface WriteRecord {
  block: number
  /** What the write put in the block, as the history compares it (a digest). */
  value: string
  /** true: acknowledged; false: in doubt (the request failed, it may or may not be there). */
  acked: boolean
  /** When it was acknowledged (ms on the history's clock); needed only with `rpo`. */
  acked_ms?: number
  /** Acknowledged while no copy but one had it (a synchronous group out of sync): its loss is allowed. */
  unprotected?: boolean
}

/** What a lost write may be forgiven under asynchronous replication: writes acknowledged within `rpo_ms` before `failover_ms`. */
export interface RpoAllowance {
  failover_ms: number
  rpo_ms: number
}

export type WriteProblem =
  /** The block holds an older write (or zeros): `lost` was acknowledged and is gone. A violation. */
  | { kind: 'lost'; block: number; lost: string; holds: string }
  /** The block holds data that no write to it put there. A violation. */
  | { kind: 'invented'; block: number; holds: string }
  /** Acknowledged writes whose loss the configuration allows (within the RPO, or unprotected); reported, no violation. */
  | { kind: 'lost-allowed'; block: number; lost: string; holds: string }

/** The kinds of problem that break a promise. */
export const isViolation = (p: WriteProblem): boolean => p.kind !== 'lost-allowed'

/**
 * The problems of each block in `final` (block → the value it holds), in block order.
 * `zero` is the value of a block never written.
 */
export function writeProblems(
  writes: readonly WriteRecord[],
  final: ReadonlyMap<number, string>,
  zero: string,
  rpo?: RpoAllowance,
): WriteProblem[] {
  const byBlock = new Map<number, WriteRecord[]>()
  for (const w of writes) byBlock.set(w.block, [...(byBlock.get(w.block) ?? []), w])
  const problems: WriteProblem[] = []
  for (const [block, holds] of [...final].sort((a, b) => a[0] - b[0])) {
    const problem = blockProblem(block, byBlock.get(block) ?? [], holds, zero, rpo)
    if (problem) problems.push(problem)
  }
  return problems
}

function blockProblem(
  block: number,
  mine: readonly WriteRecord[],
  holds: string,
  zero: string,
  rpo?: RpoAllowance,
): WriteProblem | undefined {
  const required = lastIndex(mine, (w) => w.acked && !forgivable(w, rpo))
  const lastAcked = lastIndex(mine, (w) => w.acked)
  // What the block may hold: the newest write it must keep, or zeros if none; anything after that.
  const allowed = new Set(mine.slice(Math.max(0, required)).map((w) => w.value))
  if (required < 0) allowed.add(zero)
  if (allowed.has(holds)) {
    // Older than the last acknowledged write: forgiven within the RPO, and reported.
    const older = lastAcked > required && mine.slice(lastAcked).every((w) => w.value !== holds)
    return older ? { kind: 'lost-allowed', block, lost: mine[lastAcked]!.value, holds } : undefined
  }
  if (!mine.some((w) => w.value === holds) && holds !== zero) return { kind: 'invented', block, holds }
  return { kind: 'lost', block, lost: mine[required]!.value, holds }
}

/** Its loss is what the configuration may cost: acknowledged unprotected, or within the RPO before the failover. */
function forgivable(w: WriteRecord, rpo?: RpoAllowance): boolean {
  if (w.unprotected === true) return true
  return rpo !== undefined && w.acked_ms !== undefined && w.acked_ms > rpo.failover_ms - rpo.rpo_ms
}

function lastIndex<T>(items: readonly T[], match: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (match(items[i]!)) return i
  return -1
}
