/*
 * healthcheck: a minimal blocking HTTP/1.0 GET for container health checks.
 * It runs before any event loop exists, so it uses plain sockets with
 * SO_RCVTIMEO/SO_SNDTIMEO rather than libevent.
 */
#include "healthcheck.h"
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int
healthcheck_run(const char *url, const char *token, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        snprintf(err, errlen, "only http:// URLs are supported: '%s'", url);
        return 2;
    }
    p += 7;
    const char *slash = strchr(p, '/');
    char hostport[300];
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    if (hl == 0 || hl >= sizeof(hostport)) {
        snprintf(err, errlen, "bad URL '%s'", url);
        return 2;
    }
    memcpy(hostport, p, hl);
    hostport[hl] = '\0';
    const char *path = slash ? slash : "/";
    char host[IP_STR_MAX];
    uint16_t port;
    if (strchr(hostport, ':') == NULL)
        strncat(hostport, ":80", sizeof(hostport) - strlen(hostport) - 1);
    if (config_parse_hostport(hostport, host, sizeof(host), &port, NULL) < 0) {
        snprintf(err, errlen, "bad host in URL '%s' (use an IP address)", url);
        return 2;
    }
    if (strcmp(host, "0.0.0.0") == 0)
        str_copy(host, sizeof(host), "127.0.0.1");
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, host, &s6->sin6_addr);
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, host, &s4->sin_addr);
        sl = sizeof(*s4);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return 1;
    }
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errlen, "connect %s: %s", hostport, strerror(errno));
        close(fd);
        return 1;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.0\r\nHost: %s\r\n%s%s%sConnection: "
                     "close\r\n\r\n",
                     path, hostport, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        snprintf(err, errlen, "cannot send the request");
        close(fd);
        return 1;
    }
    char resp[64];
    ssize_t got = 0;
    while (got < (ssize_t)sizeof(resp) - 1) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - (size_t)got);
        if (r <= 0)
            break;
        got += r;
    }
    close(fd);
    resp[got > 0 ? got : 0] = '\0';
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
        snprintf(err, errlen, "no HTTP answer from %s", hostport);
        return 1;
    }
    if (code != 200) {
        snprintf(err, errlen, "%s answered HTTP %d", url, code);
        return 1;
    }
    return 0;
}
