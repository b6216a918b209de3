/*
 * net_http: evhttp plumbing for the control API: one HTTP listener on a
 * worker's event loop, requests wrapped so api.c sees method, path, query,
 * headers and body without libevent types, and replies that may be sent
 * later (long-polling ?wait= requests). Routing lives in api.c.
 */
#include "net.h"
#include "net_int.h"
#include "util.h"

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    uint16_t port;
    net_http_fn *fn;
    void *arg;
};

struct net_http_req {
    struct evhttp_request *req;
    struct evkeyvalq query;
    char *path;
    char method[16];
    bool gone;
};

static const char *
method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "OTHER";
}

static void
on_conn_close(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    struct net_http_req *r = arg;
    r->gone = true;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    struct net_http *h = arg;
    struct net_http_req *r = emu_calloc(1, sizeof(*r));
    if (r == NULL) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    r->req = req;
    TAILQ_INIT(&r->query);
    str_copy(r->method, sizeof(r->method),
             method_name(evhttp_request_get_command(req)));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    size_t plen = 0;
    r->path = evhttp_uridecode(path ? path : "/", 0, &plen);
    /* A decoded %00 would cut the path short of what was asked for:
     * "/index.html%00.js" is not "/index.html". */
    if (r->path == NULL || strlen(r->path) != plen ||
        (query && evhttp_parse_query_str(query, &r->query) < 0)) {
        evhttp_clear_headers(&r->query);
        free(r->path);
        emu_free(r);
        evhttp_send_error(req, 400, "bad request");
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (conn)
        evhttp_connection_set_closecb(conn, on_conn_close, r);
    h->fn(r, h->arg);
}

struct net_http *
net_http_new(struct net *n, const char *host, uint16_t port, size_t max_body,
             net_http_fn *fn, void *arg, char *err, size_t errlen)
{
    struct net_http *h = emu_calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->fn = fn;
    h->arg = arg;
    h->http = evhttp_new(net_base(n));
    if (h->http == NULL) {
        emu_free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    evhttp_set_max_body_size(h->http, (ev_ssize_t)max_body);
    evhttp_set_max_headers_size(h->http, 16384);
    evhttp_set_timeout(h->http, 60);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_HEAD);
    evhttp_set_gencb(h->http, on_request, h);
    h->sock = evhttp_bind_socket_with_handle(h->http, host, port);
    if (h->sock == NULL) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%u for the API",
                 strchr(host, ':') ? "[" : "", host,
                 strchr(host, ':') ? "]" : "", port);
        evhttp_free(h->http);
        emu_free(h);
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(evhttp_bound_socket_get_fd(h->sock), (struct sockaddr *)&ss,
                &sl);
    char tmp[IP_STR_MAX];
    net_sockaddr_format((struct sockaddr *)&ss, tmp, sizeof(tmp), &h->port);
    return h;
}

uint16_t
net_http_port(const struct net_http *h)
{
    return h->port;
}

void
net_http_free(struct net_http *h)
{
    if (h == NULL)
        return;
    evhttp_free(h->http);
    emu_free(h);
}

const char *
net_http_method(const struct net_http_req *r)
{
    return r->method;
}

const char *
net_http_path(const struct net_http_req *r)
{
    return r->path;
}

const char *
net_http_query(const struct net_http_req *r, const char *key)
{
    return evhttp_find_header(&r->query, key);
}

const char *
net_http_header(const struct net_http_req *r, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

const char *
net_http_body(struct net_http_req *r, size_t *len)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(r->req);
    /* A NUL after the body, so parsers may treat it as a string. */
    evbuffer_add(b, "", 1);
    size_t n = evbuffer_get_length(b);
    *len = n - 1;
    return (const char *)evbuffer_pullup(b, (ev_ssize_t)n);
}

bool
net_http_req_gone(const struct net_http_req *r)
{
    return r->gone;
}

void
net_http_add_header(struct net_http_req *r, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

void
net_http_reply(struct net_http_req *r, int status, const char *ctype,
               const char *body, size_t len)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(r->req);
    if (conn)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    if (!r->gone) {
        struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
        evhttp_add_header(out, "Content-Type", ctype);
        evhttp_add_header(out, "Cache-Control", "no-store");
        evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
        struct evbuffer *b = evbuffer_new();
        if (b) {
            evbuffer_add(b, body, len);
            const char *reason = status == 200   ? "OK"
                                 : status == 201 ? "Created"
                                 : status == 204 ? "No Content"
                                                 : NULL;
            evhttp_send_reply(r->req, status, reason, b);
            evbuffer_free(b);
        } else {
            evhttp_send_error(r->req, 503, "out of memory");
        }
    }
    evhttp_clear_headers(&r->query);
    free(r->path);
    emu_free(r);
}
