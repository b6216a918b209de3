/*
 * data_reader: end-of-data detection and dot-unstuffing as a byte state
 * machine. Pure. The common case (inside a line) copies whole spans up to
 * the next CR or LF, so the per-byte switch runs only at line edges.
 */
#include "data_reader.h"

#include <string.h>

const char *
data_reader_state_name(enum data_reader_state s)
{
    switch (s) {
    case DR_LINE_START:
        return "line_start";
    case DR_MID:
        return "mid";
    case DR_CR:
        return "cr";
    case DR_DOT:
        return "dot";
    case DR_DOT_CR:
        return "dot_cr";
    case DR_DONE:
        return "done";
    }
    return "?";
}

void
data_reader_init(struct data_reader *r, struct buf *out, uint64_t max)
{
    memset(r, 0, sizeof(*r));
    r->state = DR_LINE_START;
    r->prev_crlf = true; /* the DATA command line itself */
    r->max = max;
    r->out = out;
}

static void
emit(struct data_reader *r, const char *p, size_t n)
{
    uint64_t room = r->size < r->max ? r->max - r->size : 0;
    r->size += n;
    if (n > room) {
        r->overflow = true;
        n = (size_t)room;
    }
    if (n == 0 || r->nomem)
        return;
    struct buf *b = r->out;
    if (b->len + n < b->cap) {
        /* Room already reserved (usually: the buffer is sized at DATA). */
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    } else if (buf_append(b, p, n) < 0) {
        r->nomem = true;
    }
}

/* Copy the run of ordinary bytes at p; returns how many bytes it took.
 * When the run ends in CRLF, the line end goes with it (one copy instead
 * of two) and the next line starts: what DR_CR would have done. */
static size_t
span(struct data_reader *r, const char *p, size_t len)
{
    /* memchr is vectorised: find the line end, then look for an earlier
     * CR and for NUL bytes inside the run. */
    const char *lf = memchr(p, '\n', len);
    size_t i = lf ? (size_t)(lf - p) : len;
    const char *cr = memchr(p, '\r', i);
    if (cr)
        i = (size_t)(cr - p);
    if (i && memchr(p, '\0', i))
        r->flags |= DR_SAW_NUL;
    if (cr && lf && lf == cr + 1) {
        emit(r, p, i + 2);
        r->prev_crlf = true;
        r->state = DR_LINE_START;
        return i + 2;
    }
    if (i)
        emit(r, p, i);
    return i;
}

size_t
data_reader_feed(struct data_reader *r, const char *p, size_t len)
{
    size_t i = 0;

    while (i < len && r->state != DR_DONE) {
        char c = p[i];
        switch (r->state) {
        case DR_LINE_START:
            if (c == '.') {
                r->state = DR_DOT;
                i++;
                break;
            }
            r->state = DR_MID;
            break; /* reprocess c as a line byte */
        case DR_MID:
            if (c == '\r') {
                r->state = DR_CR;
                i++;
            } else if (c == '\n') {
                r->flags |= DR_SAW_BARE_LF;
                emit(r, "\n", 1);
                r->prev_crlf = false;
                r->state = DR_LINE_START;
                i++;
            } else {
                i += span(r, p + i, len - i);
            }
            break;
        case DR_CR:
            if (c == '\n') {
                emit(r, "\r\n", 2);
                r->prev_crlf = true;
                r->state = DR_LINE_START;
                i++;
            } else {
                r->flags |= DR_SAW_BARE_CR;
                emit(r, "\r", 1);
                r->state = DR_MID; /* c is reprocessed */
            }
            break;
        case DR_DOT:
            if (c == '\r') {
                r->state = DR_DOT_CR;
                i++;
            } else if (c == '\n') {
                /* "." ended by a bare LF: not the end of the data, and
                 * (like Postfix's normalize mode) not stored either. */
                r->flags |= DR_SAW_BARE_LF;
                r->prev_crlf = false;
                r->state = DR_LINE_START;
                i++;
            } else {
                /* RFC 5321 4.5.2: drop the leading period. */
                r->state = DR_MID;
            }
            break;
        case DR_DOT_CR:
            if (c == '\n') {
                i++;
                if (r->prev_crlf) {
                    r->state = DR_DONE;
                } else {
                    /* After a bare-LF line: dropped, as above. */
                    r->prev_crlf = true;
                    r->state = DR_LINE_START;
                }
            } else {
                /* ".<CR>x": a stuffed line that holds a bare CR. */
                r->flags |= DR_SAW_BARE_CR;
                emit(r, "\r", 1);
                r->state = DR_MID;
            }
            break;
        case DR_DONE:
            break;
        }
    }
    return i;
}
