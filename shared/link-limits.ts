/**
 * Bounds of the lab's link faults (issue 13): beyond them a lab stops being a network. A
 * module of its own, without zod, so that the CLI shows them without loading the protocol.
 */
export const LINK_LATENCY_MS_MAX = 10_000
export const LINK_MBIT_MAX = 100_000
export const LINK_LOSS_MAX = 0.5
