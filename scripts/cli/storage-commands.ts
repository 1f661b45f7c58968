/** `hvlab array …` and `hvlab rcopy …`: the storage arrays' commands. */
import type { Command } from 'commander'

export function registerStorageCommands(_program: Command): void {
  // The storage arrays' commands register here.
}
