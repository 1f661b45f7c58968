/**
 * A node's I/O state for one CSV, as Get-ClusterSharedVolumeState reports it: Direct
 * while the node reaches the array itself, Redirected (BlockRedirected, with why) while
 * its I/O goes over the cluster network to the coordinator node. Pure: the node feeds it
 * what its I/O and probes found; a switch comes back with the timeline event to emit.
 */

import type { EventOf } from '../../shared/timeline/events.js'
export type CsvIoMode = 'Direct' | 'Redirected'
/** The StateInfo values this lab uses. */
export type CsvStateInfo = 'Direct' | 'BlockRedirected'
/** BlockRedirectedIOReason: why the node cannot do direct I/O. */
export type CsvRedirectReason = 'NotBlockRedirected' | 'NoDiskConnectivity'

export interface CsvPathState {
  mode: CsvIoMode
  state_info: CsvStateInfo
  reason: CsvRedirectReason
  /** What failed, for a person (the last direct I/O error). */
  detail: string
  since_ms: number
}

export type CsvPathInput =
  /** A direct I/O or probe could not reach the array. */
  | { kind: 'direct-unreachable'; detail: string }
  /** A direct I/O or probe reached the array. */
  | { kind: 'direct-ok' }

/** A node's I/O path changed (shared/timeline/storage-events.ts). */
export type CsvPathEvent = EventOf<'csv.io-redirected' | 'csv.io-direct'>

export function initialPathState(now_ms: number): CsvPathState {
  return { mode: 'Direct', state_info: 'Direct', reason: 'NotBlockRedirected', detail: '', since_ms: now_ms }
}

export function stepPathState(
  s: CsvPathState,
  input: CsvPathInput,
  now_ms: number,
  who: { csv: string; node: string },
): { state: CsvPathState; event?: CsvPathEvent } {
  if (input.kind === 'direct-unreachable') {
    if (s.mode === 'Redirected') return { state: { ...s, detail: input.detail } }
    return {
      state: { mode: 'Redirected', state_info: 'BlockRedirected', reason: 'NoDiskConnectivity', detail: input.detail, since_ms: now_ms },
      event: {
        kind: 'csv.io-redirected',
        details: { csv: who.csv, node: who.node, reason: 'NoDiskConnectivity', detail: input.detail.slice(0, 240) },
      },
    }
  }
  if (s.mode === 'Direct') return { state: s }
  return {
    state: initialPathState(now_ms),
    event: { kind: 'csv.io-direct', details: { csv: who.csv, node: who.node, redirected_ms: Math.max(0, now_ms - s.since_ms) } },
  }
}
