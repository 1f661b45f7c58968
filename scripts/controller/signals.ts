/** The signals `hvlab kill` may send: KILL and TERM end a process, STOP pauses it, CONT resumes it. */
export const SIGNALS = ['KILL', 'TERM', 'STOP', 'CONT'] as const
export type SignalName = (typeof SIGNALS)[number]
