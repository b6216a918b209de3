/*
 * reply: reply validation and multi-line assembly. Pure.
 */
#include "reply.h"

#include <string.h>

bool
reply_code_valid(int code)
{
    return code >= 200 && code <= 599;
}

static bool
digits(const char *s, size_t len, size_t *i, size_t max)
{
    size_t start = *i;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9')
        (*i)++;
    return *i > start && *i - start <= max;
}

bool
reply_esc_valid(const char *s, size_t len)
{
    size_t i = 0;
    if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
        return false;
    i = 2;
    if (!digits(s, len, &i, 3) || i >= len || s[i] != '.')
        return false;
    i++;
    if (!digits(s, len, &i, 3))
        return false;
    return i == len;
}

static bool
line_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\r' || p[i] == '\0')
            return false;
    return n <= REPLY_LINE_MAX - 2;
}

int
reply_finish(struct buf *out, const char *text, size_t len)
{
    size_t start_len = out->len;
    size_t i = 0;
    int code = -1;
    unsigned lines = 0;

    if (len > 0 && text[len - 1] == '\n')
        len--; /* a trailing newline is not an extra empty line */
    if (len < 3)
        return -1;
    while (i <= len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        const char *p = text + i;
        size_t n = end - i;
        if (n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0' || p[1] > '9' ||
            p[2] < '0' || p[2] > '9')
            goto fail;
        int c = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        if (code >= 0 && c != code)
            goto fail;
        code = c;
        if (n > 3 && p[3] != ' ' && p[3] != '-')
            goto fail;
        if (!line_ok(p, n) || ++lines > REPLY_LINES_MAX)
            goto fail;
        bool last = nl == NULL;
        if (buf_append(out, p, 3) < 0 ||
            (n > 3 || !last ? buf_append_char(out, last ? ' ' : '-') : 0) < 0 ||
            (n > 4 && buf_append(out, p + 4, n - 4) < 0) ||
            buf_append(out, "\r\n", 2) < 0)
            goto fail;
        if (last)
            break;
        i = end + 1;
    }
    return code;
fail:
    out->len = start_len;
    if (out->data)
        out->data[start_len] = '\0';
    return -1;
}

int
reply_build(struct buf *out, int code, const char *esc, const char *lines,
            size_t len)
{
    size_t start_len = out->len;
    size_t esc_len = esc ? strlen(esc) : 0;
    size_t i = 0;
    unsigned n_lines = 0;

    if (!reply_code_valid(code))
        return -1;
    if (esc_len && !reply_esc_valid(esc, esc_len))
        return -1;
    if (len > 0 && lines[len - 1] == '\n')
        len--; /* a trailing newline is not an extra empty line */
    do {
        const char *nl = memchr(lines + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - lines) : len;
        /* reply_finish refuses more lines, or longer ones counting the
         * "CODE ESC " prefix: fail here, where the scenario can still be
         * told why. */
        size_t full =
            3 + (esc_len ? 1 + esc_len : 0) + (end > i ? 1 + end - i : 0);
        if (!line_ok(lines + i, end - i) || full > REPLY_LINE_MAX - 2 ||
            ++n_lines > REPLY_LINES_MAX)
            goto fail;
        if (out->len > start_len && buf_append_char(out, '\n') < 0)
            goto fail;
        if (buf_printf(out, "%03d", code) < 0)
            goto fail;
        if (esc_len && (buf_append_char(out, ' ') < 0 ||
                        buf_append(out, esc, esc_len) < 0))
            goto fail;
        if (end > i && (buf_append_char(out, ' ') < 0 ||
                        buf_append(out, lines + i, end - i) < 0))
            goto fail;
        i = end + 1;
    } while (i <= len);
    return 0;
fail:
    out->len = start_len;
    if (out->data)
        out->data[start_len] = '\0';
    return -1;
}
