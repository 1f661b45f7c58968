/**
 * mulberry32: a small seeded PRNG returning numbers in [0, 1). Simulations, fuzzers and
 * benchmarks use it so a run is reproducible from its seed; protocol code never does
 * (randomness, like time, is an input there).
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}
