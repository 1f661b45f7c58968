/**
 * The C allocator's settings for the processes the lab starts (hosts, arrays, the witness,
 * and the migration bench's endpoints): added to the environment they are spawned with,
 * unless that environment sets them already.
 *
 * Why: a process receiving a migration gets every page batch in a new buffer (ws gathers
 * each frame, 1–4.2 MiB, into one), and the first write to each page of fresh memory costs
 * a page fault, dear in the lab's virtual machines (3.2 ms per MiB written on the project's
 * 2-core machine, against 0.07 ms into memory written before). glibc's malloc, left to
 * itself, serves such buffers from fresh mappings or hands the heap's free top back to the
 * operating system once it passes twice its (adaptive) mmap threshold, so batch after batch
 * lands in fresh pages again. Fixed here: a buffer under 32 MiB comes from the heap, and up
 * to 256 MiB free at its top is kept for the next ones. Measured on that machine, the
 * migration bench run whole with and without (two pairs): 12% fewer page faults, 5–16% less
 * CPU over every process, the raw transport's receiver 0.95–1.16 ms of CPU per MiB against
 * 1.1–2.2, the stream's sender 2.5 ms against 3.2–3.5.
 *
 * Setting either variable turns glibc's adaptive threshold off, so both are set. Other C
 * libraries ignore them.
 */
const MiB = 1024 * 1024

export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * MiB),
  MALLOC_TRIM_THRESHOLD_: String(256 * MiB),
}

/** `env` with ALLOCATOR_ENV's settings where `env` has none of its own. */
export function withAllocatorEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...ALLOCATOR_ENV, ...env }
}
