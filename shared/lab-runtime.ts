/**
 * How the lab runs its processes (hosts, arrays, the witness, and the migration bench's
 * endpoints) beyond their code: the Node options they start with and the C allocator's
 * settings in their environment. Measured on the project's 2-core machine; the README's
 * data-plane figures say more.
 *
 * Node options (LAB_NODE_ARGS), before the script:
 *   --expose-gc        a process collects once after it lets go of large buffers
 *                      (shared/large-buffer-release.ts).
 *   --v8-pool-size=1   one V8 helper thread, not four: a collection's concurrent marking and
 *                      sweeping took both CPUs from the hosts' event loops around a live
 *                      migration's switch-over (seen with perf: the destination's main thread
 *                      waiting to run while the source's and its own helpers marked). The
 *                      blackout bench, 16–32 migrations each way: the client's gap across the
 *                      move within 40 ms in 28 of 32 (median 25.6 ms) against 17 of 24 (34.5).
 * Worker threads refuse such process-wide options in their execArgv: workerExecArgv()
 * leaves them out (shared/bounded-worker-pool.ts).
 *
 * The allocator (ALLOCATOR_ENV), unless the environment sets it: a process receiving a
 * migration gets every page batch in a new buffer (ws gathers each frame, 1–4.2 MiB, into
 * one), and the first write to each page of fresh memory costs a page fault (3.2 ms per
 * MiB written, against 0.07 ms into memory written before). glibc's malloc, left to itself,
 * serves such buffers from fresh mappings or hands the heap's free top back to the
 * operating system once it passes twice its adaptive mmap threshold, so batch after batch
 * landed in fresh pages. Fixed here: a buffer under 32 MiB comes from the heap, and up to
 * 256 MiB free at its top is kept for the next ones. The migration bench run whole with
 * and without (two pairs): 12% fewer page faults, 5–16% less CPU over every process. Setting
 * either variable turns glibc's adaptive threshold off, so both are set; other C libraries
 * ignore them.
 */
const MiB = 1024 * 1024

export const LAB_NODE_ARGS: readonly string[] = ['--expose-gc', '--v8-pool-size=1']

export const ALLOCATOR_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * MiB),
  MALLOC_TRIM_THRESHOLD_: String(256 * MiB),
}

/** `env` with ALLOCATOR_ENV's settings where `env` has none of its own. */
export function withAllocatorEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...ALLOCATOR_ENV, ...env }
}

/** A process's execArgv for its worker threads: without LAB_NODE_ARGS, which a worker refuses. */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  return execArgv.filter((arg) => !LAB_NODE_ARGS.includes(arg))
}
