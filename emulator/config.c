/*
 * config: command-line parsing into struct config. Pure: argv in, struct and
 * error text out. Options are a table of {name, takes value, handler} so the
 * usage text and the parser cannot drift apart silently; `--name value` and
 * `--name=value` are both accepted.
 */
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
listener_kind_name(enum listener_kind k)
{
    switch (k) {
    case LISTENER_SMTP:
        return "smtp";
    case LISTENER_SMTPS:
        return "smtps";
    }
    return "?";
}

const char *
log_level_name(enum log_level l)
{
    switch (l) {
    case LOG_LEVEL_ERROR:
        return "error";
    case LOG_LEVEL_WARN:
        return "warn";
    case LOG_LEVEL_INFO:
        return "info";
    case LOG_LEVEL_DEBUG:
        return "debug";
    case LOG_LEVEL_TRACE:
        return "trace";
    }
    return "?";
}

const char *
log_format_name(enum log_format f)
{
    switch (f) {
    case LOG_FORMAT_TEXT:
        return "text";
    case LOG_FORMAT_JSON:
        return "json";
    }
    return "?";
}

const char config_usage[] =
    "Usage: smtp-emulator [options]\n"
    "\n"
    "A scriptable fake SMTP server that answers the way real servers and\n"
    "providers do, including their rejections.\n"
    "\n"
    "Listeners (repeatable; PORT 0 picks a free port; each prints\n"
    "'listening smtp|smtps HOST:PORT' on stdout when ready):\n"
    "  --listen HOST:PORT[=SCENARIO]   plain SMTP, STARTTLS when TLS is set "
    "up\n"
    "                                  (default 127.0.0.1:2525; IPv6 as "
    "[::1]:2525)\n"
    "  --listen-tls HOST:PORT[=SCENARIO]  implicit TLS (RFC 8314, like port "
    "465)\n"
    "  --proxy-protocol HOST:PORT[=SCENARIO]  plain SMTP that expects a PROXY\n"
    "                                  v1/v2 header first\n"
    "\n"
    "Identity:\n"
    "  --hostname NAME                 name in greeting and replies (default:\n"
    "                                  this machine's host name)\n"
    "  --banner TEXT                   greeting text after '220 ' (default\n"
    "                                  'HOST ESMTP smtp-emulator')\n"
    "\n"
    "TLS:\n"
    "  --tls-cert FILE, --tls-key FILE server certificate and key (default:\n"
    "                                  certs/server.pem, certs/server.key)\n"
    "  --tls-ca FILE                   CA that client certificates are "
    "checked\n"
    "                                  against; requested, not required\n"
    "                                  (default certs/ca.pem)\n"
    "  --no-tls                        offer no STARTTLS, even with "
    "certificates\n"
    "\n"
    "Limits:\n"
    "  --max-message-size BYTES        default 10240000 (k/M/G suffixes "
    "allowed)\n"
    "  --max-recipients N              default 1000\n"
    "  --max-connections N             default 20000\n"
    "  --idle-timeout SECONDS          default 300\n"
    "  --max-errors N                  errors before '421 4.7.0 ... too many\n"
    "                                  errors' (default 20)\n"
    "  --error-delay SECONDS           delay each reply after 10 errors\n"
    "                                  (default 0: off)\n"
    "  --shutdown-grace SECONDS        time given to sessions on SIGTERM "
    "(default 1)\n"
    "\n"
    "Capture:\n"
    "  --spool DIR                     also write each message as a Maildir "
    "file\n"
    "  --max-messages N                messages kept in memory (default "
    "10000)\n"
    "  --max-store-bytes BYTES         bytes kept in memory (default 256M)\n"
    "  --max-sessions N                session records kept (default 1000)\n"
    "\n"
    "Client address simulation:\n"
    "  --xclient-from CIDR[,CIDR]      who may send XCLIENT (default "
    "loopback)\n"
    "\n"
    "Scenarios:\n"
    "  --scenario NAME|PATH.lua        default scenario (default 'accept')\n"
    "  --set [SCENARIO.]KEY=VALUE      set a scenario parameter (repeatable;\n"
    "                                  lists are comma-separated)\n"
    "  --list-scenarios                list scenarios and exit\n"
    "  --describe NAME                 show a scenario's parameters and "
    "replies\n"
    "  --check-scenario PATH           load a scenario file, report, exit\n"
    "  --seed N                        make IDs and random faults "
    "reproducible\n"
    "  --clock-offset SECONDS          start the scenario clock this far "
    "ahead\n"
    "  --lua-memory BYTES              memory cap per scenario (default 64M)\n"
    "  --lua-instructions N            instruction budget per hook call\n"
    "                                  (default 10000000)\n"
    "\n"
    "Control API:\n"
    "  --api HOST:PORT                 serve the HTTP API (default off)\n"
    "  --api-token TOKEN               require 'Authorization: Bearer "
    "TOKEN'\n"
    "\n"
    "Process:\n"
    "  --workers N                     event-loop threads (default 1)\n"
    "  --state memory|redis://HOST:PORT[/DB]  where emu.state lives (default\n"
    "                                  memory; Redis lets replicas share it)\n"
    "  --state-prefix PREFIX           Redis key prefix (default "
    "smtp-emulator:)\n"
    "  --state-fallback none|memory    Redis unreachable: 451 (none) or local\n"
    "                                  memory\n"
    "  --state-timeout SECONDS         how long a Redis call may take "
    "(0.5)\n"
    "  --instance-id NAME              names this replica in the API\n"
    "  --user NAME                     drop root privileges after binding\n"
    "  --log-format text|json          default text\n"
    "  --log-level error|warn|info|debug|trace   default info\n"
    "  --log-file FILE                 log there instead of stderr\n"
    "  --healthcheck URL               GET URL, exit 0 on HTTP 200 (for\n"
    "                                  container health checks)\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 after SIGTERM/SIGINT, 2 for a usage or input error, 1 "
    "for an\n"
    "environment failure (port in use, out of memory).\n";

struct parse_ctx {
    struct config *c;
    char *err;
    size_t errlen;
};

typedef int opt_fn(struct parse_ctx *p, const char *opt, const char *val);

static int fail(struct parse_ctx *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
fail(struct parse_ctx *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->errlen, fmt, ap);
    va_end(ap);
    /* One line, whatever the echoed value holds. */
    for (size_t i = 0; i < p->errlen && p->err[i]; i++)
        if ((unsigned char)p->err[i] < 0x20 || p->err[i] == 0x7f)
            p->err[i] = '?';
    return -1;
}

int
config_parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mult = 1;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            mult = 1024;
            break;
        case 'm':
        case 'M':
            mult = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mult = 1024ULL * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
        if (*end == 'B' || *end == 'b')
            end++;
        if (*end)
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int
parse_uint(struct parse_ctx *p, const char *opt, const char *val, unsigned min,
           unsigned max, unsigned *out)
{
    char *end;
    if (val[0] < '0' || val[0] > '9')
        return fail(p, "%s: not a number: '%s'", opt, val);
    errno = 0;
    unsigned long v = strtoul(val, &end, 10);
    if (errno || *end || v < min || v > max)
        return fail(p, "%s: expected a whole number from %u to %u, got '%s'",
                    opt, min, max, val);
    *out = (unsigned)v;
    return 0;
}

static int
parse_seconds(struct parse_ctx *p, const char *opt, const char *val,
              double *out)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || *end || end == val || v < 0 || v > 1e9 || v != v)
        return fail(p, "%s: expected seconds (a number >= 0), got '%s'", opt,
                    val);
    *out = v;
    return 0;
}

/* A host name (RFC 1123 labels, plus '_' as container names have), or an
 * IPv4 address, which has the same characters. */
static bool
valid_dns_name(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || (c == '-' && label > 0);
        if (!ok || ++label > 63)
            return false;
    }
    return s[n - 1] != '-';
}

int
config_parse_redis_url(const char *s, char *host, size_t hostcap,
                       uint16_t *port, unsigned *db)
{
    if (strncmp(s, "redis://", 8) != 0)
        return -1;
    const char *rest = s + 8;
    const char *slash = strchr(rest, '/');
    char hp[REDIS_HOST_MAX + 16];
    size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
    if (hl == 0 || hl >= sizeof(hp))
        return -1;
    memcpy(hp, rest, hl);
    hp[hl] = '\0';
    /* An IP address ("[::1]" for IPv6), or a DNS name such as a compose
     * service's ("redis"), which the net module resolves without
     * blocking; the port defaults to Redis's 6379. */
    char *colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
    if (colon && hp[0] == '[')
        colon++;
    *port = 6379;
    if (colon) {
        char *end;
        unsigned long v = strtoul(colon + 1, &end, 10);
        if (colon[1] == '\0' || *end || v == 0 || v > 65535)
            return -1;
        *port = (uint16_t)v;
        *colon = '\0';
    }
    if (hp[0] == '[') {
        size_t n = strlen(hp);
        if (n < 3 || hp[n - 1] != ']')
            return -1;
        hp[n - 1] = '\0';
        memmove(hp, hp + 1, n - 1);
        unsigned char a6[16];
        if (inet_pton(AF_INET6, hp, a6) != 1)
            return -1;
    } else if (!valid_dns_name(hp)) {
        return -1;
    }
    if (strlen(hp) >= hostcap)
        return -1;
    str_copy(host, hostcap, hp);
    *db = 0;
    if (slash && slash[1]) {
        char *end;
        unsigned long v = strtoul(slash + 1, &end, 10);
        if (*end || v > 1000)
            return -1;
        *db = (unsigned)v;
    }
    return 0;
}

int
config_parse_hostport(const char *s, char *host, size_t hostcap, uint16_t *port,
                      char **scenario)
{
    const char *eq = scenario ? strchr(s, '=') : NULL;
    size_t len = eq ? (size_t)(eq - s) : strlen(s);
    const char *h;
    size_t hl;
    const char *ps;

    if (scenario)
        *scenario = NULL;
    if (len > 0 && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (rb == NULL || rb + 1 >= s + len || rb[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(rb - h);
        ps = rb + 2;
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < len; i++)
            if (s[i] == ':')
                colon = s + i;
        if (colon == NULL)
            return -1;
        h = s;
        hl = (size_t)(colon - s);
        ps = colon + 1;
        if (memchr(s, ':', hl)) /* an IPv6 literal needs brackets */
            return -1;
    }
    size_t pl = (size_t)(s + len - ps);
    if (pl == 0 || pl > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (ps[i] < '0' || ps[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(ps[i] - '0');
    }
    if (v > 65535)
        return -1;
    struct ip_addr a;
    if (hl == 0 || (hl == 1 && h[0] == '*'))
        str_copy(host, hostcap, "0.0.0.0");
    else if (hl == 9 && memcmp(h, "localhost", 9) == 0)
        str_copy(host, hostcap, "127.0.0.1");
    else if (ip_parse(h, hl, &a) == 0 && hl < hostcap) {
        memcpy(host, h, hl);
        host[hl] = '\0';
    } else
        return -1;
    *port = (uint16_t)v;
    if (eq) {
        if (eq[1] == '\0')
            return -1;
        *scenario = emu_strdup(eq + 1);
        if (*scenario == NULL)
            return -1;
    }
    return 0;
}

static int
add_listener(struct parse_ctx *p, const char *opt, const char *val,
             enum listener_kind kind, bool proxy)
{
    struct config *c = p->c;
    struct config_listener l;
    memset(&l, 0, sizeof(l));
    l.kind = kind;
    l.proxy_protocol = proxy;
    if (config_parse_hostport(val, l.host, sizeof(l.host), &l.port,
                              &l.scenario) < 0)
        return fail(p,
                    "%s: bad address '%s' (expected HOST:PORT, [IPV6]:PORT, "
                    "optionally =SCENARIO)",
                    opt, val);
    struct config_listener *nl =
        emu_realloc(c->listeners, (c->n_listeners + 1) * sizeof(*nl));
    if (nl == NULL) {
        emu_free(l.scenario);
        return fail(p, "out of memory");
    }
    c->listeners = nl;
    c->listeners[c->n_listeners++] = l;
    return 0;
}

static int
set_str(struct parse_ctx *p, char **dst, const char *val)
{
    char *d = emu_strdup(val);
    if (d == NULL)
        return fail(p, "out of memory");
    emu_free(*dst);
    *dst = d;
    return 0;
}

static int
opt_listen(struct parse_ctx *p, const char *o, const char *v)
{
    return add_listener(p, o, v, LISTENER_SMTP, false);
}

static int
opt_listen_tls(struct parse_ctx *p, const char *o, const char *v)
{
    return add_listener(p, o, v, LISTENER_SMTPS, false);
}

static int
opt_proxy(struct parse_ctx *p, const char *o, const char *v)
{
    return add_listener(p, o, v, LISTENER_SMTP, true);
}

static int
opt_hostname(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0' || strpbrk(v, " \t\r\n") != NULL)
        return fail(p, "%s: bad host name '%s'", o, v);
    return set_str(p, &p->c->hostname, v);
}

static int
opt_banner(struct parse_ctx *p, const char *o, const char *v)
{
    if (strpbrk(v, "\r\n") != NULL)
        return fail(p, "%s: the banner must be one line", o);
    return set_str(p, &p->c->banner, v);
}

static int
opt_tls_cert(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_str(p, &p->c->tls_cert, v);
}

static int
opt_tls_key(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_str(p, &p->c->tls_key, v);
}

static int
opt_tls_ca(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_str(p, &p->c->tls_ca, v);
}

static int
opt_no_tls(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    (void)v;
    p->c->no_tls = true;
    return 0;
}

static int
opt_max_size(struct parse_ctx *p, const char *o, const char *v)
{
    if (config_parse_size(v, &p->c->max_message_size) < 0 ||
        p->c->max_message_size == 0)
        return fail(p,
                    "%s: expected a size in bytes (e.g. 10240000 or 10M), "
                    "got '%s'",
                    o, v);
    return 0;
}

static int
opt_max_rcpt(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 1, 1000000, &p->c->max_recipients);
}

static int
opt_max_conn(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 1, 1000000, &p->c->max_connections);
}

static int
opt_idle(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 1, 86400, &p->c->idle_timeout);
}

static int
opt_max_errors(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 1, 1000000, &p->c->hard_error_limit);
}

static int
opt_error_delay(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_seconds(p, o, v, &p->c->error_delay);
}

static int
opt_grace(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_seconds(p, o, v, &p->c->shutdown_grace);
}

static int
opt_log_format(struct parse_ctx *p, const char *o, const char *v)
{
    if (strcmp(v, "text") == 0)
        p->c->log_format = LOG_FORMAT_TEXT;
    else if (strcmp(v, "json") == 0)
        p->c->log_format = LOG_FORMAT_JSON;
    else
        return fail(p, "%s: expected text or json, got '%s'", o, v);
    return 0;
}

static int
opt_log_level(struct parse_ctx *p, const char *o, const char *v)
{
    for (int l = LOG_LEVEL_ERROR; l <= LOG_LEVEL_TRACE; l++) {
        if (strcmp(v, log_level_name((enum log_level)l)) == 0) {
            p->c->log_level = (enum log_level)l;
            return 0;
        }
    }
    return fail(p, "%s: expected error, warn, info, debug or trace, got '%s'",
                o, v);
}

static int
opt_log_file(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_str(p, &p->c->log_file, v);
}

static int
opt_spool(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0')
        return fail(p, "%s: empty directory name", o);
    return set_str(p, &p->c->spool_dir, v);
}

static int
opt_max_messages(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 0, 100000000, &p->c->max_messages);
}

static int
opt_max_store(struct parse_ctx *p, const char *o, const char *v)
{
    if (config_parse_size(v, &p->c->max_store_bytes) < 0)
        return fail(p, "%s: expected a size in bytes, got '%s'", o, v);
    return 0;
}

static int
opt_max_sessions(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 0, 10000000, &p->c->max_sessions);
}

static int
opt_xclient_from(struct parse_ctx *p, const char *o, const char *v)
{
    struct cidr_list l;
    size_t at = 0, bl = 0;
    if (cidr_list_parse(v, strlen(v), &l, &at, &bl) < 0)
        return fail(p, "%s: bad address or CIDR '%.*s'", o, (int)bl, v + at);
    cidr_list_cleanup(&p->c->xclient_from);
    p->c->xclient_from = l;
    return 0;
}

static int
opt_scenario(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0')
        return fail(p, "%s: empty scenario name", o);
    return set_str(p, &p->c->scenario, v);
}

static int
opt_set(struct parse_ctx *p, const char *o, const char *v)
{
    const char *eq = strchr(v, '=');
    if (eq == NULL || eq == v)
        return fail(p, "%s: expected KEY=VALUE or SCENARIO.KEY=VALUE, got '%s'",
                    o, v);
    const char *dot = memchr(v, '.', (size_t)(eq - v));
    struct config_param prm = {0};
    if (dot) {
        prm.scenario = emu_strndup(v, (size_t)(dot - v));
        prm.key = emu_strndup(dot + 1, (size_t)(eq - dot - 1));
    } else {
        prm.key = emu_strndup(v, (size_t)(eq - v));
    }
    prm.value = emu_strdup(eq + 1);
    struct config_param *np =
        emu_realloc(p->c->params, (p->c->n_params + 1) * sizeof(*p->c->params));
    if (prm.key == NULL || prm.value == NULL || (dot && !prm.scenario) ||
        np == NULL) {
        if (np)
            p->c->params = np;
        emu_free(prm.scenario);
        emu_free(prm.key);
        emu_free(prm.value);
        return fail(p, "out of memory");
    }
    if (prm.key[0] == '\0' || (prm.scenario && prm.scenario[0] == '\0')) {
        p->c->params = np;
        emu_free(prm.scenario);
        emu_free(prm.key);
        emu_free(prm.value);
        return fail(p, "%s: empty name in '%s'", o, v);
    }
    p->c->params = np;
    p->c->params[p->c->n_params++] = prm;
    return 0;
}

static int
set_action(struct parse_ctx *p, enum config_action a, const char *v)
{
    p->c->action = a;
    if (v)
        return set_str(p, &p->c->action_arg, v);
    return 0;
}

static int
opt_list(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    (void)v;
    return set_action(p, CONFIG_LIST_SCENARIOS, NULL);
}

static int
opt_describe(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_action(p, CONFIG_DESCRIBE, v);
}

static int
opt_check(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_action(p, CONFIG_CHECK_SCENARIO, v);
}

static int
opt_healthcheck(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    return set_action(p, CONFIG_HEALTHCHECK, v);
}

static int
opt_help(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    (void)v;
    return set_action(p, CONFIG_HELP, NULL);
}

static int
opt_version(struct parse_ctx *p, const char *o, const char *v)
{
    (void)o;
    (void)v;
    return set_action(p, CONFIG_VERSION, NULL);
}

static int
opt_seed(struct parse_ctx *p, const char *o, const char *v)
{
    char *end;
    errno = 0;
    if (v[0] < '0' || v[0] > '9')
        return fail(p, "%s: expected a whole number, got '%s'", o, v);
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || *end)
        return fail(p, "%s: expected a whole number, got '%s'", o, v);
    p->c->seed = s;
    p->c->seed_set = true;
    return 0;
}

static int
opt_clock_offset(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_seconds(p, o, v, &p->c->clock_offset);
}

static int
opt_lua_mem(struct parse_ctx *p, const char *o, const char *v)
{
    if (config_parse_size(v, &p->c->lua_mem_limit) < 0 ||
        p->c->lua_mem_limit < 1024 * 1024)
        return fail(p, "%s: expected a size of at least 1M, got '%s'", o, v);
    return 0;
}

static int
opt_lua_instr(struct parse_ctx *p, const char *o, const char *v)
{
    if (config_parse_size(v, &p->c->lua_instr_limit) < 0 ||
        p->c->lua_instr_limit < 1000)
        return fail(p, "%s: expected a number of at least 1000, got '%s'", o,
                    v);
    return 0;
}

static int
opt_api(struct parse_ctx *p, const char *o, const char *v)
{
    if (config_parse_hostport(v, p->c->api_host, sizeof(p->c->api_host),
                              &p->c->api_port, NULL) < 0)
        return fail(p, "%s: bad address '%s' (expected HOST:PORT)", o, v);
    p->c->api_enabled = true;
    return 0;
}

static int
opt_api_token(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0')
        return fail(p, "%s: empty token", o);
    return set_str(p, &p->c->api_token, v);
}

static int
opt_workers(struct parse_ctx *p, const char *o, const char *v)
{
    return parse_uint(p, o, v, 1, 256, &p->c->workers);
}

static int
opt_user(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0')
        return fail(p, "%s: empty user name", o);
    return set_str(p, &p->c->user, v);
}

static int
opt_state(struct parse_ctx *p, const char *o, const char *v)
{
    if (strcmp(v, "memory") == 0) {
        emu_free(p->c->state_url);
        p->c->state_url = NULL;
        return 0;
    }
    char host[REDIS_HOST_MAX];
    uint16_t port;
    unsigned db;
    if (config_parse_redis_url(v, host, sizeof(host), &port, &db) < 0)
        return fail(p,
                    "%s: expected memory or redis://HOST:PORT[/DB], got "
                    "'%s'",
                    o, v);
    return set_str(p, &p->c->state_url, v);
}

static int
opt_state_prefix(struct parse_ctx *p, const char *o, const char *v)
{
    if (strpbrk(v, " \r\n") != NULL)
        return fail(p, "%s: no spaces in a key prefix", o);
    return set_str(p, &p->c->state_prefix, v);
}

static int
opt_state_fallback(struct parse_ctx *p, const char *o, const char *v)
{
    if (strcmp(v, "memory") == 0)
        p->c->state_fallback_memory = true;
    else if (strcmp(v, "none") == 0)
        p->c->state_fallback_memory = false;
    else
        return fail(p, "%s: expected none or memory, got '%s'", o, v);
    return 0;
}

static int
opt_state_timeout(struct parse_ctx *p, const char *o, const char *v)
{
    if (parse_seconds(p, o, v, &p->c->state_timeout) < 0)
        return -1;
    if (p->c->state_timeout <= 0)
        return fail(p, "%s: must be more than 0", o);
    return 0;
}

static int
opt_instance_id(struct parse_ctx *p, const char *o, const char *v)
{
    if (v[0] == '\0' || strlen(v) > 64)
        return fail(p, "%s: 1 to 64 characters", o);
    return set_str(p, &p->c->instance_id, v);
}

static const struct option_def {
    const char *name;
    bool has_value;
    opt_fn *fn;
} options[] = {
    {"listen", true, opt_listen},
    {"listen-tls", true, opt_listen_tls},
    {"proxy-protocol", true, opt_proxy},
    {"hostname", true, opt_hostname},
    {"banner", true, opt_banner},
    {"tls-cert", true, opt_tls_cert},
    {"tls-key", true, opt_tls_key},
    {"tls-ca", true, opt_tls_ca},
    {"no-tls", false, opt_no_tls},
    {"max-message-size", true, opt_max_size},
    {"max-recipients", true, opt_max_rcpt},
    {"max-connections", true, opt_max_conn},
    {"idle-timeout", true, opt_idle},
    {"max-errors", true, opt_max_errors},
    {"error-delay", true, opt_error_delay},
    {"shutdown-grace", true, opt_grace},
    {"log-format", true, opt_log_format},
    {"log-level", true, opt_log_level},
    {"log-file", true, opt_log_file},
    {"spool", true, opt_spool},
    {"max-messages", true, opt_max_messages},
    {"max-store-bytes", true, opt_max_store},
    {"max-sessions", true, opt_max_sessions},
    {"xclient-from", true, opt_xclient_from},
    {"scenario", true, opt_scenario},
    {"set", true, opt_set},
    {"list-scenarios", false, opt_list},
    {"describe", true, opt_describe},
    {"check-scenario", true, opt_check},
    {"seed", true, opt_seed},
    {"clock-offset", true, opt_clock_offset},
    {"lua-memory", true, opt_lua_mem},
    {"lua-instructions", true, opt_lua_instr},
    {"api", true, opt_api},
    {"api-token", true, opt_api_token},
    {"workers", true, opt_workers},
    {"user", true, opt_user},
    {"state", true, opt_state},
    {"state-prefix", true, opt_state_prefix},
    {"state-fallback", true, opt_state_fallback},
    {"state-timeout", true, opt_state_timeout},
    {"instance-id", true, opt_instance_id},
    {"healthcheck", true, opt_healthcheck},
    {"help", false, opt_help},
    {"version", false, opt_version},
};

static void
defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->action = CONFIG_RUN;
    c->max_message_size = 10240000; /* Postfix message_size_limit */
    c->max_recipients = 1000;       /* Postfix smtpd_recipient_limit */
    c->max_connections = 20000;
    c->idle_timeout = 300; /* Postfix smtpd_timeout */
    c->shutdown_grace = 1.0;
    c->hard_error_limit = 20; /* Postfix smtpd_hard_error_limit */
    c->soft_error_limit = 10; /* Postfix smtpd_soft_error_limit */
    c->error_delay = 0;
    c->max_line = 2048; /* Postfix line_length_limit */
    c->log_format = LOG_FORMAT_TEXT;
    c->log_level = LOG_LEVEL_INFO;
    c->max_messages = 10000;
    c->max_store_bytes = 256ULL * 1024 * 1024;
    c->max_sessions = 1000;
    c->lua_mem_limit = 64ULL * 1024 * 1024;
    c->lua_instr_limit = 10000000;
    c->workers = 1;
    c->state_timeout = 0.5;
}

enum config_result
config_parse(int argc, char *const argv[], struct config *c, char *err,
             size_t errlen)
{
    struct parse_ctx p = {c, err, errlen};
    defaults(c);
    if (errlen)
        err[0] = '\0';

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (strcmp(a, "-h") == 0) {
                opt_help(&p, a, NULL);
                continue;
            }
            fail(&p, "unexpected argument '%s' (see --help)", a);
            return CONFIG_ERROR;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct option_def *def = NULL;
        for (size_t k = 0; k < EMU_ARRAY_LEN(options); k++) {
            if (strlen(options[k].name) == nlen &&
                memcmp(options[k].name, name, nlen) == 0) {
                def = &options[k];
                break;
            }
        }
        if (def == NULL) {
            fail(&p, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return CONFIG_ERROR;
        }
        const char *val = NULL;
        if (def->has_value) {
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fail(&p, "--%s needs a value", def->name);
                return CONFIG_ERROR;
            }
        } else if (eq) {
            fail(&p, "--%s takes no value", def->name);
            return CONFIG_ERROR;
        }
        char optname[64];
        snprintf(optname, sizeof(optname), "--%s", def->name);
        if (def->fn(&p, optname, val) < 0)
            return CONFIG_ERROR;
    }

    if (c->n_listeners == 0 && add_listener(&p, "--listen", "127.0.0.1:2525",
                                            LISTENER_SMTP, false) < 0)
        return CONFIG_ERROR;
    if (c->xclient_from.n == 0) {
        const char *lo = "127.0.0.0/8,::1/128";
        if (cidr_list_parse(lo, strlen(lo), &c->xclient_from, NULL, NULL) < 0) {
            fail(&p, "out of memory");
            return CONFIG_ERROR;
        }
    }
    if ((c->tls_cert == NULL) != (c->tls_key == NULL)) {
        fail(&p, "--tls-cert and --tls-key go together: give both");
        return CONFIG_ERROR;
    }
    if (c->scenario == NULL && set_str(&p, &c->scenario, "accept") < 0)
        return CONFIG_ERROR;
    if (c->state_prefix == NULL &&
        set_str(&p, &c->state_prefix, "smtp-emulator:") < 0)
        return CONFIG_ERROR;
    return CONFIG_OK;
}

void
config_cleanup(struct config *c)
{
    for (size_t i = 0; i < c->n_listeners; i++)
        emu_free(c->listeners[i].scenario);
    emu_free(c->listeners);
    for (size_t i = 0; i < c->n_params; i++) {
        emu_free(c->params[i].scenario);
        emu_free(c->params[i].key);
        emu_free(c->params[i].value);
    }
    emu_free(c->params);
    emu_free(c->action_arg);
    emu_free(c->hostname);
    emu_free(c->banner);
    emu_free(c->tls_cert);
    emu_free(c->tls_key);
    emu_free(c->tls_ca);
    emu_free(c->log_file);
    emu_free(c->spool_dir);
    emu_free(c->scenario);
    emu_free(c->api_token);
    emu_free(c->user);
    emu_free(c->state_url);
    emu_free(c->state_prefix);
    emu_free(c->instance_id);
    cidr_list_cleanup(&c->xclient_from);
    memset(c, 0, sizeof(*c));
}
