/*
 * reply: pure formatting and checking of SMTP replies (RFC 5321 section
 * 4.2, enhanced status codes of RFC 3463). Every byte the session sends as a
 * reply passes through reply_finish(), which refuses anything that is not a
 * well-formed reply and turns a '\n'-separated text into the multi-line
 * "CODE-" form. Used by smtp_session and by the scenario bridge.
 */
#ifndef EMU_REPLY_H
#define EMU_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Longest reply line we emit, CRLF included (RFC 5321 4.5.3.1.5: 512). We
 * allow more because real providers send longer lines (Exchange's 5.7.51 is
 * over 300 bytes, some Gmail pages longer): the cap is a sanity bound. */
#define REPLY_LINE_MAX 4096
#define REPLY_LINES_MAX 64

/* 200..599 with a known first digit and three digits. */
bool reply_code_valid(int code);
/* "C.S.D" with C in {2,4,5}, S 0-999, D 0-999 (RFC 3463 section 2). */
bool reply_esc_valid(const char *s, size_t len);

/*
 * Append `text` as one reply to `out`. `text` holds one or more lines
 * separated by '\n', each starting with the same three-digit code followed
 * by ' ', '-' or the end of the line. The separator of every line but the
 * last is set to '-', of the last to ' ', and each line gets CRLF.
 * Returns the code, or -1 (out unchanged) when the text is not a reply or
 * memory runs out.
 */
int reply_finish(struct buf *out, const char *text, size_t len);

/*
 * Build the text form from parts: every line of `lines` (separated by '\n')
 * becomes "CODE ESC line" (or "CODE line" when esc is NULL/empty).
 * Returns 0 or -1 on bad code/esc, a line break inside a line (CR, NUL),
 * more than REPLY_LINES_MAX lines, or allocation failure.
 */
int reply_build(struct buf *out, int code, const char *esc, const char *lines,
                size_t len);

#endif
