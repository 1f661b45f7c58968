/** `hvlab cluster …`, `hvlab vm …`, `hvlab node …`: the failover cluster's commands. */
import type { Command } from 'commander'

export function registerClusterCommands(_program: Command): void {
  // The failover cluster's commands register here.
}
