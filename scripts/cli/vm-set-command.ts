/**
 * `hvlab vm set NAME …`: changes a VM role's settings in its record (the cluster database),
 * checked by the coordinator exactly as `vm create` checks them. Preferred owners,
 * priority, failback and anti-affinity apply at once, also while the VM runs (from the
 * next placement, failover or failback on: a running VM is not moved for them); memory
 * only while the VM runs nowhere (the emulated VM cannot change its memory live).
 * The option values are parsed here, each bad one a usage error (exit 2) saying what to write.
 */
import type { Command } from 'commander'
import { HvlabError } from '../../shared/errors.js'
import {
  ROLE_FAILOVER_PERIOD_H_MAX,
  ROLE_FAILOVER_PERIOD_H_MIN,
  ROLE_FAILOVER_THRESHOLD_MAX,
  ROLE_PRIORITIES,
} from '../../shared/protocol/cluster-limits.js'
import type { RoleCommandMessage } from '../../shared/protocol/cluster-messages.js'
import { roleCommand } from './cluster-client.js'
import { ControlClient } from './control-client.js'
import { dirOption, out } from './options.js'

type Changes = Extract<RoleCommandMessage, { op: 'set' }>['changes']
type Failback = NonNullable<Changes['failback']>

interface VmSetOptions {
  dir: string
  preferred?: string
  priority?: string
  failback?: string
  antiAffinity?: string
  memoryMib?: string
  failoverThreshold?: string
  failoverPeriodH?: string
}

const NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/
/** As `vm create --memory-mib`. */
const MEMORY_MIB_MIN = 32
const MEMORY_MIB_MAX = 4 * 1024 * 1024

export function registerVmSet(vm: Command): void {
  vm.command('set')
    .description(
      "change a VM role's settings (kept in its record); preferred owners, priority, failback and anti-affinity apply at once, also while it runs (from its next placement on; a running VM is not moved for them); memory only while it is stopped",
    )
    .argument('<name>', 'the VM name')
    .option('--preferred <hosts>', 'preferred owners in order, comma-separated, e.g. host-a1,host-a2; "none" clears them')
    .option(
      '--priority <priority>',
      'high, medium (the default) or low: the order in which roles start and fail over; none: No Auto Start (not started again after a failure until you start it)',
    )
    .option(
      '--failback <when>',
      'off; immediate (back to its most preferred owner as soon as it is up); window:HH-HH (only between these hours of the day, UTC, e.g. window:22-06)',
    )
    .option('--anti-affinity <class>', 'its anti-affinity class: roles of one class run on different hosts when possible; "none" clears it')
    .option('--memory-mib <n>', `guest memory, MiB (${MEMORY_MIB_MIN}–${MEMORY_MIB_MAX}); only while the VM is stopped`)
    .option(
      '--failover-threshold <n>',
      `WSFC's FailoverThreshold: failovers allowed within the failover period before the role stays failed (0–${ROLE_FAILOVER_THRESHOLD_MAX}); "default": the cluster's, nodes − 1. The record keeps the newest failovers that fit in it (about 30): a higher threshold counts only those`,
    )
    .option(
      '--failover-period-h <hours>',
      `WSFC's FailoverPeriod: the window the failovers are counted in, hours (${ROLE_FAILOVER_PERIOD_H_MIN}–${ROLE_FAILOVER_PERIOD_H_MAX}; the cluster's is 6)`,
    )
    .addOption(dirOption())
    .action(async (name: string, o: VmSetOptions) => {
      const changes = parseChanges(o)
      await roleCommand(ControlClient.forDir(o.dir), { op: 'set', name, changes })
      out(`changed vm ${name}: ${describeChanges(changes)}; \`hvlab vm list\` shows its settings`)
    })
}

/** The changes the options ask for; HVLAB_E_USAGE for a bad value or none at all. */
export function parseChanges(o: Omit<VmSetOptions, 'dir'>): Changes {
  const changes: Changes = {}
  if (o.preferred !== undefined) changes.preferred_owners = parsePreferred(o.preferred)
  if (o.priority !== undefined) changes.priority = parsePriority(o.priority)
  if (o.failback !== undefined) changes.failback = parseFailback(o.failback)
  if (o.antiAffinity !== undefined) changes.anti_affinity = parseClass(o.antiAffinity)
  if (o.memoryMib !== undefined) changes.memory_mib = parseMemory(o.memoryMib)
  if (o.failoverThreshold !== undefined) changes.failover_threshold = parseThreshold(o.failoverThreshold)
  if (o.failoverPeriodH !== undefined) changes.failover_period_h = parsePeriodH(o.failoverPeriodH)
  if (Object.keys(changes).length === 0) {
    throw usage(
      'nothing to change: give at least one of --preferred, --priority, --failback, --anti-affinity, --memory-mib, --failover-threshold, --failover-period-h',
    )
  }
  return changes
}

function parsePreferred(v: string): string[] {
  if (v.trim() === 'none') return []
  const hosts = v.split(',').map((s) => s.trim())
  const bad = hosts.find((h) => !NAME.test(h))
  if (bad !== undefined)
    throw usage(
      `--preferred ${JSON.stringify(v)}: ${JSON.stringify(bad)} is not a host name; write host names comma-separated, e.g. host-a1,host-a2, or none`,
    )
  return hosts
}

function parsePriority(v: string): NonNullable<Changes['priority']> {
  const p = ROLE_PRIORITIES.find((x) => x === v)
  if (p === undefined) throw usage(`--priority ${JSON.stringify(v)}: write one of ${ROLE_PRIORITIES.join(', ')}`)
  return p
}

/** off | immediate | window:HH-HH (whole hours 0–23, UTC; may wrap midnight). */
export function parseFailback(v: string): Failback {
  if (v === 'off') return { enabled: false, window: null }
  if (v === 'immediate') return { enabled: true, window: null }
  const m = /^window:(\d{1,2})-(\d{1,2})$/.exec(v)
  const start_hour = Number(m?.[1])
  const end_hour = Number(m?.[2])
  if (m === null || start_hour > 23 || end_hour > 23 || start_hour === end_hour) {
    throw usage(
      `--failback ${JSON.stringify(v)}: write off, immediate, or window:HH-HH with two different whole hours 0–23 (UTC), e.g. window:22-06`,
    )
  }
  return { enabled: true, window: { start_hour, end_hour } }
}

function parseClass(v: string): string | null {
  if (v === 'none') return null
  if (!NAME.test(v)) throw usage(`--anti-affinity ${JSON.stringify(v)}: write a class name of 1–63 of a-z 0-9 . _ - (e.g. sql), or none`)
  return v
}

function parseMemory(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < MEMORY_MIB_MIN || n > MEMORY_MIB_MAX) {
    throw usage(`--memory-mib ${JSON.stringify(v)}: write a whole number of MiB from ${MEMORY_MIB_MIN} to ${MEMORY_MIB_MAX}`)
  }
  return n
}

function parseThreshold(v: string): number | null {
  if (v === 'default') return null
  const n = Number(v)
  if (!/^\d+$/.test(v) || n > ROLE_FAILOVER_THRESHOLD_MAX)
    throw usage(`--failover-threshold ${JSON.stringify(v)}: write a whole number from 0 to ${ROLE_FAILOVER_THRESHOLD_MAX}, or default`)
  return n
}

function parsePeriodH(v: string): number {
  const n = Number(v)
  if (!/^\d+$/.test(v) || n < ROLE_FAILOVER_PERIOD_H_MIN || n > ROLE_FAILOVER_PERIOD_H_MAX)
    throw usage(
      `--failover-period-h ${JSON.stringify(v)}: write a whole number of hours from ${ROLE_FAILOVER_PERIOD_H_MIN} to ${ROLE_FAILOVER_PERIOD_H_MAX}`,
    )
  return n
}

function describeChanges(c: Changes): string {
  const parts: string[] = []
  if (c.preferred_owners) parts.push(`preferred ${c.preferred_owners.join(',') || 'none'}`)
  if (c.priority) parts.push(`priority ${c.priority}`)
  if (c.failback) {
    const w = c.failback.window
    parts.push(`failback ${!c.failback.enabled ? 'off' : w === null ? 'immediate' : `window ${w.start_hour}-${w.end_hour} UTC`}`)
  }
  if (c.anti_affinity !== undefined) parts.push(`anti-affinity ${c.anti_affinity ?? 'none'}`)
  if (c.memory_mib !== undefined) parts.push(`memory ${c.memory_mib} MiB`)
  if (c.failover_threshold !== undefined) parts.push(`failover threshold ${c.failover_threshold ?? "the cluster's"}`)
  if (c.failover_period_h !== undefined) parts.push(`failover period ${c.failover_period_h} h`)
  return parts.join(', ')
}

function usage(message: string): HvlabError {
  return new HvlabError('HVLAB_E_USAGE', message)
}
