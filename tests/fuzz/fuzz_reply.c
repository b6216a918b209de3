/*
 * fuzz_reply: reply text as a scenario writes it. The first byte picks the
 * code and whether an enhanced status code is used, the next byte the
 * length of that code; the rest is the text. reply_finish gets the text
 * appended to a buffer that already holds bytes (a reply queued earlier),
 * reply_build gets code, enhanced code and lines. Invariants: on failure
 * the buffer is exactly as before; on success every line is "CODE-" or
 * (last) "CODE " / "CODE", ends in CRLF, holds no CR, LF or NUL, and fits
 * REPLY_LINE_MAX; what reply_build makes, reply_finish accepts with the
 * same code; and finishing is idempotent.
 */
#include <string.h>

#include "fuzz.h"
#include "reply.h"

static const char queued[] = "250-earlier reply\r\n";

/* Check `n` bytes of wire replies with code `code`; return the number of
 * lines, and rebuild the '\n'-separated text into `text`. */
static size_t
check_wire(const char *p, size_t n, int code, struct buf *text)
{
    char c3[4];
    size_t lines = 0, i = 0;
    snprintf(c3, sizeof(c3), "%03d", code);
    while (i < n) {
        const char *crlf = NULL;
        for (size_t k = i; k + 1 < n; k++)
            if (p[k] == '\r' && p[k + 1] == '\n') {
                crlf = p + k;
                break;
            }
        FUZZ_ASSERT(crlf != NULL);
        size_t len = (size_t)(crlf - (p + i));
        const char *l = p + i;
        FUZZ_ASSERT(len >= 3 && memcmp(l, c3, 3) == 0);
        FUZZ_ASSERT(len + 2 <= REPLY_LINE_MAX);
        FUZZ_ASSERT(memchr(l, '\0', len) == NULL);
        FUZZ_ASSERT(memchr(l, '\n', len) == NULL);
        FUZZ_ASSERT(memchr(l, '\r', len) == NULL);
        bool last = (size_t)(crlf + 2 - p) == n;
        if (!last)
            FUZZ_ASSERT(len >= 4 && l[3] == '-');
        else
            FUZZ_ASSERT(len == 3 || l[3] == ' ');
        if (lines > 0)
            FUZZ_ASSERT(buf_append_char(text, '\n') == 0);
        FUZZ_ASSERT(buf_append(text, l, len) == 0);
        lines++;
        i = (size_t)(crlf + 2 - p);
    }
    FUZZ_ASSERT(lines >= 1 && lines <= REPLY_LINES_MAX);
    return lines;
}

/* reply_finish on `text`; `want_code` >= 0 means it must succeed with
 * that code, -1 means either outcome is fine. */
static void
finish(const char *text, size_t len, int want_code)
{
    struct buf out = {0};
    FUZZ_ASSERT(buf_append_str(&out, queued) == 0);
    size_t before = out.len;
    int code = reply_finish(&out, text, len);
    if (code < 0) {
        FUZZ_ASSERT(want_code < 0);
        FUZZ_ASSERT(out.len == before);
        FUZZ_ASSERT(memcmp(out.data, queued, before) == 0);
        FUZZ_ASSERT(out.data[before] == '\0');
        buf_cleanup(&out);
        return;
    }
    if (want_code >= 0)
        FUZZ_ASSERT(code == want_code);
    FUZZ_ASSERT(code >= 200 && code <= 599);
    FUZZ_ASSERT(memcmp(out.data, queued, before) == 0);
    struct buf again_text = {0};
    size_t lines =
        check_wire(out.data + before, out.len - before, code, &again_text);
    /* Finishing the finished text gives the same bytes. */
    struct buf again = {0};
    FUZZ_ASSERT(reply_finish(&again, again_text.data, again_text.len) == code);
    FUZZ_ASSERT(again.len == out.len - before);
    FUZZ_ASSERT(memcmp(again.data, out.data + before, again.len) == 0);
    (void)lines;
    buf_cleanup(&again);
    buf_cleanup(&again_text);
    buf_cleanup(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int codes[] = {250, 221, 354, 421, 450, 451, 452, 500,
                                550, 554, 199, 600, 0,   -1,  220, 334};
    static const char *const escs[] = {"",       "2.0.0",    "4.7.1",
                                       "5.7.26", "5.1.1",    "9.9.9",
                                       "5.",     "5.1000.1", NULL};
    const char *text = (const char *)data;

    finish(text, size, -1);
    if (size < 2)
        return 0;
    int code = codes[data[0] % EMU_ARRAY_LEN(codes)];
    const char *esc = escs[(data[0] >> 4) % EMU_ARRAY_LEN(escs)];
    /* Sometimes the enhanced code comes from the input itself. */
    char esc_buf[16];
    size_t el = data[1] % 12;
    if (data[1] & 0x80 && el + 2 <= size) {
        memcpy(esc_buf, text + 2, el);
        esc_buf[el] = '\0';
        esc = esc_buf;
    }
    (void)reply_code_valid(code);
    if (esc)
        (void)reply_esc_valid(esc, strlen(esc));

    struct buf out = {0};
    FUZZ_ASSERT(buf_append_str(&out, queued) == 0);
    size_t before = out.len;
    int rc = reply_build(&out, code, esc, text + 2, size - 2);
    if (rc < 0) {
        FUZZ_ASSERT(out.len == before);
        FUZZ_ASSERT(memcmp(out.data, queued, before + 1) == 0);
    } else {
        FUZZ_ASSERT(rc == 0 && reply_code_valid(code));
        /* Built text must be a reply: same code, same number of lines. */
        const char *built = out.data + before;
        size_t blen = out.len - before;
        for (size_t i = 0; i < blen; i++)
            FUZZ_ASSERT(built[i] != '\r' && built[i] != '\0');
        /* What reply_build makes, reply_finish accepts (finding R1). */
        finish(built, blen, code);
    }
    buf_cleanup(&out);
    return 0;
}
