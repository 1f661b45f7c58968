/**
 * The page: the unit of guest memory (agent/vm/guest-memory.ts), of its dirty tracking
 * and of what a live migration sends (migration-messages.ts). A file of its own, without
 * zod, because the page-diff workers need it and start faster without the schemas.
 */
export const PAGE_SIZE_BYTES = 4096
