/**
 * The lab's own organisation: every process but a standalone host that the topology gives
 * another one (a hosting provider's DR host). Apart from topology.ts so that what the CLI
 * loads at start-up (lab-layout.ts) stays free of zod.
 */
export const LAB_ORGANISATION = 'lab'
