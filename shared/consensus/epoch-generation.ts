/**
 * How a view epoch is laid out: a forced quorum starts a new generation of epochs, newer than
 * anything the other hosts hold, by moving to the next multiple of EPOCHS_PER_GENERATION. The
 * hosts make such epochs (membership.ts); the CLI shows them as GENERATION/EPOCH.
 */
export const EPOCHS_PER_GENERATION = 2 ** 24

/** The first epoch of the generation after the one `epoch` is in. */
export function nextGenerationEpoch(epoch: number): number {
  return (Math.floor(epoch / EPOCHS_PER_GENERATION) + 1) * EPOCHS_PER_GENERATION
}

/** The generation an epoch is in (0 until a forced quorum) and its place within it. */
export function epochParts(epoch: number): { generation: number; within: number } {
  return { generation: Math.floor(epoch / EPOCHS_PER_GENERATION), within: epoch % EPOCHS_PER_GENERATION }
}
