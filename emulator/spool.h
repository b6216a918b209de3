/*
 * spool: writes a captured message as a Maildir file (tmp/, fsync, rename
 * into new/), with the envelope as a Return-Path: line and one
 * X-Envelope-To: line per recipient at the top. A file appears in new/ whole
 * or not at all. Called by smtp_session before it answers 250.
 */
#ifndef EMU_SPOOL_H
#define EMU_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Create DIR, DIR/tmp, DIR/new, DIR/cur when missing. 0 or -1 (err). */
int spool_init(const char *dir, char *err, size_t errlen);

/* Write `m`; `unique` makes the file name unique within this process.
 * 0, or -1 with a reason in `err` (nothing is left in tmp/ or new/). */
int spool_write(const char *dir, const char *hostname, uint64_t unique,
                const struct store_msg *m, char *err, size_t errlen);

#endif
