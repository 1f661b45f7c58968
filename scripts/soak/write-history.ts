/**
 * The write checker of a history (issue 13's soak, and the storage lab tests): given every
 * write issued to a volume's blocks, in issue order with whether and when it was
 * acknowledged, and what each block holds at the end, it finds the acknowledged writes
 * that were lost and the data that no write put there. A block must hold its last
 * acknowledged write, or a write issued after it that was never acknowledged (in doubt:
 * it may or may not have landed); never an older write, and a block never written holds
 * zeros. Some losses are what the configuration allows (`loss_allowed`), reported and
 * forgiven: under asynchronous replication a failover may lose what was acknowledged since
 * the secondary's last consistent point, within the promised RPO (async-replication.ts),
 * and a synchronous remote-copy group that kept taking writes while its link was down
 * (3PAR's no_fail_wrt_on_err) may lose those if the other side is failed over to
 * (disk-history.ts). Any other loss is a breach.
 */

export interface WriteRecord {
  block: number
  /** What the write put in the block, as the history compares it (a digest). */
  value: string
  /** true: acknowledged; false: in doubt (the request failed, it may or may not be there). */
  acked: boolean
  /** The configuration allows its loss (acknowledged by one copy only, or within an RPO): reported, no breach. */
  loss_allowed?: boolean
}

export type WriteProblem =
  /** The block holds an older write (or zeros): `lost` was acknowledged and is gone. A violation. */
  | { kind: 'lost'; block: number; lost: string; holds: string }
  /** The block holds data that no write to it put there. A violation. */
  | { kind: 'invented'; block: number; holds: string }
  /** Acknowledged writes whose loss the configuration allows (`loss_allowed`); reported, no violation. */
  | { kind: 'lost-allowed'; block: number; lost: string; holds: string }

/** The kinds of problem that break a promise. */
export const isViolation = (p: WriteProblem): boolean => p.kind !== 'lost-allowed'

/**
 * The problems of each block in `final` (block → the value it holds), in block order.
 * `zero` is the value of a block never written.
 */
export function writeProblems(writes: readonly WriteRecord[], final: ReadonlyMap<number, string>, zero: string): WriteProblem[] {
  const byBlock = new Map<number, WriteRecord[]>()
  for (const w of writes) byBlock.set(w.block, [...(byBlock.get(w.block) ?? []), w])
  const problems: WriteProblem[] = []
  for (const [block, holds] of [...final].sort((a, b) => a[0] - b[0])) {
    const problem = blockProblem(block, byBlock.get(block) ?? [], holds, zero)
    if (problem) problems.push(problem)
  }
  return problems
}

function blockProblem(block: number, mine: readonly WriteRecord[], holds: string, zero: string): WriteProblem | undefined {
  const required = lastIndex(mine, (w) => w.acked && w.loss_allowed !== true)
  const lastAcked = lastIndex(mine, (w) => w.acked)
  // What the block may hold: the newest write it must keep, or zeros if none; anything after that.
  const allowed = new Set(mine.slice(Math.max(0, required)).map((w) => w.value))
  if (required < 0) allowed.add(zero)
  if (allowed.has(holds)) {
    // Older than the last acknowledged write: its loss is allowed, and reported.
    const older = lastAcked > required && mine.slice(lastAcked).every((w) => w.value !== holds)
    return older ? { kind: 'lost-allowed', block, lost: mine[lastAcked]!.value, holds } : undefined
  }
  if (!mine.some((w) => w.value === holds) && holds !== zero) return { kind: 'invented', block, holds }
  return { kind: 'lost', block, lost: mine[required]!.value, holds }
}

function lastIndex<T>(items: readonly T[], match: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (match(items[i]!)) return i
  return -1
}
