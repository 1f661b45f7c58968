/** The binary units the CLI prints sizes and rates in, and durations in seconds. */

export const MIB = 2 ** 20
export const GIB = 2 ** 30

/** Bytes as MiB with one decimal, e.g. 1.5 (the unit is the caller's to print). */
export const mibText = (bytes: number): string => (bytes / MIB).toFixed(1)

/** Milliseconds as seconds with one decimal, e.g. 1.6 (the unit is the caller's to print). */
export const secondsText = (ms: number): string => (Math.max(0, ms) / 1000).toFixed(1)
