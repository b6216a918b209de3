/*
 * spool: Maildir delivery of captured messages. The file is built in tmp/
 * under a unique name (seconds.M<usec>P<pid>Q<n>.<host>, the Maildir
 * convention), fsync'd, then renamed into new/, so a reader never sees a
 * partial message. Any failure removes the tmp file and reports an error,
 * which the session turns into Postfix's 451 4.3.0 queue file write error.
 */
#include "spool.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static int
mkdir_p(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

int
spool_init(const char *dir, char *err, size_t errlen)
{
    static const char *const subs[] = {"", "/tmp", "/new", "/cur"};
    char path[4096];
    for (size_t i = 0; i < EMU_ARRAY_LEN(subs); i++) {
        if (snprintf(path, sizeof(path), "%s%s", dir, subs[i]) >=
                (int)sizeof(path) ||
            mkdir_p(path) < 0) {
            snprintf(err, errlen, "--spool: cannot create '%s': %s", path,
                     strerror(errno));
            return -1;
        }
    }
    /* Messages are created in tmp/ and renamed into new/: both must be
     * writable, also when they were there before (made by another user). */
    static const char *const writable[] = {"/tmp", "/new"};
    for (size_t i = 0; i < EMU_ARRAY_LEN(writable); i++) {
        snprintf(path, sizeof(path), "%s%s", dir, writable[i]);
        if (access(path, W_OK | X_OK) < 0) {
            snprintf(err, errlen, "--spool: cannot write to '%s': %s", path,
                     strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int
write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
spool_write(const char *dir, const char *hostname, uint64_t unique,
            const struct store_msg *m, char *err, size_t errlen)
{
    struct timeval tv;
    char name[512], tmp[4096], final[4096];
    struct buf head = {0};
    int fd = -1;

    gettimeofday(&tv, NULL);
    snprintf(name, sizeof(name), "%lld.M%ldP%dQ%llu.%s", (long long)tv.tv_sec,
             (long)tv.tv_usec, (int)getpid(), (unsigned long long)unique,
             hostname);
    if (snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name) >=
            (int)sizeof(tmp) ||
        snprintf(final, sizeof(final), "%s/new/%s", dir, name) >=
            (int)sizeof(final)) {
        snprintf(err, errlen, "spool path too long");
        return -1;
    }
    if (buf_printf(&head, "Return-Path: <%s>\r\n", m->mail_from) < 0)
        goto nomem;
    for (size_t i = 0; i < m->n_rcpts; i++)
        if (buf_printf(&head, "X-Envelope-To: <%s>\r\n", m->rcpts[i]) < 0)
            goto nomem;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "open %s: %s", tmp, strerror(errno));
        buf_cleanup(&head);
        return -1;
    }
    if (write_all(fd, head.data, head.len) < 0 ||
        write_all(fd, m->data ? m->data : "", m->size) < 0 || fsync(fd) < 0) {
        snprintf(err, errlen, "write %s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "close %s: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, final) < 0) {
        snprintf(err, errlen, "rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    buf_cleanup(&head);
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    buf_cleanup(&head);
    return -1;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    buf_cleanup(&head);
    return -1;
}
