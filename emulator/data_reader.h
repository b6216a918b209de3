/*
 * data_reader: the DATA body receiver (RFC 5321 section 4.5.2): finds the
 * end-of-data line, removes dot-stuffing, and counts the size against the
 * limit. Pure and incremental: bytes may arrive split at any point. It
 * follows Postfix 3.9's default "normalize" reading of line endings: a bare
 * LF ends a line like CRLF does, but only "<CR><LF>.<CR><LF>" ends the data.
 * A lone "." line that ends in a bare LF, or follows a line that did, is
 * neither the end nor stored (Postfix drops it), so the SMTP-smuggling forms
 * ("<LF>.<LF>", "<LF>.<CR><LF>") cannot end a message early.
 * Called by smtp_session; BDAT chunks do not come through here (they are
 * counted bytes, not dot-stuffed text).
 */
#ifndef EMU_DATA_READER_H
#define EMU_DATA_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum data_reader_state {
    DR_LINE_START,
    DR_MID,
    DR_CR,
    DR_DOT,
    DR_DOT_CR,
    DR_DONE,
};

const char *data_reader_state_name(enum data_reader_state s);

/* Things a strict server would object to; recorded, not acted on here. */
#define DR_SAW_BARE_LF 0x1
#define DR_SAW_BARE_CR 0x2
#define DR_SAW_NUL 0x4

struct data_reader {
    enum data_reader_state state;
    bool prev_crlf;  /* the previous line ended in CRLF */
    bool overflow;   /* more than `max` bytes: the rest was not kept */
    bool nomem;      /* an append failed: the message is incomplete */
    unsigned flags;  /* DR_SAW_* */
    uint64_t size;   /* message bytes after unstuffing, kept or not */
    uint64_t max;    /* keep at most this many bytes */
    struct buf *out; /* borrowed: where the message goes */
};

/* Start a message: `out` is borrowed and emptied by the caller. */
void data_reader_init(struct data_reader *r, struct buf *out, uint64_t max);

/*
 * Consume bytes. Returns how many were used; fewer than `len` only when the
 * end-of-data line was found (r->state == DR_DONE), and the rest belongs to
 * the next command (pipelining, RFC 2920).
 */
size_t data_reader_feed(struct data_reader *r, const char *p, size_t len);

static inline bool
data_reader_done(const struct data_reader *r)
{
    return r->state == DR_DONE;
}

#endif
