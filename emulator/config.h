/*
 * config: turns the command line into an immutable struct config. Pure: it
 * reads only argv (no files, no environment, no clock), so it is unit-tested
 * and fuzzed directly; main.c fills in what needs the system (host name,
 * default certificate paths) afterwards, and checks files. Every limit the
 * server enforces has its field and default here.
 */
#ifndef EMU_CONFIG_H
#define EMU_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"

enum listener_kind {
    LISTENER_SMTP,  /* plain, STARTTLS offered when TLS is set up */
    LISTENER_SMTPS, /* implicit TLS (RFC 8314), like port 465 */
};

const char *listener_kind_name(enum listener_kind k);

struct config_listener {
    enum listener_kind kind;
    bool proxy_protocol; /* expect a PROXY v1/v2 header first */
    char host[IP_STR_MAX];
    uint16_t port;
    char *scenario; /* NULL: the default scenario */
};

enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

enum log_level {
    LOG_LEVEL_ERROR,
    LOG_LEVEL_WARN,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_TRACE,
};

const char *log_level_name(enum log_level l);
const char *log_format_name(enum log_format f);

/* One --set: `scenario` is NULL for the default scenario. */
struct config_param {
    char *scenario;
    char *key;
    char *value;
};

enum config_action {
    CONFIG_RUN,
    CONFIG_HELP,
    CONFIG_VERSION,
    CONFIG_LIST_SCENARIOS,
    CONFIG_DESCRIBE,       /* describe `action_arg` */
    CONFIG_CHECK_SCENARIO, /* load `action_arg` and report */
    CONFIG_HEALTHCHECK,    /* GET `action_arg`, exit 0 on 200 */
};

struct config {
    enum config_action action;
    char *action_arg;

    struct config_listener *listeners;
    size_t n_listeners;

    char *hostname; /* NULL until main fills in the machine's name */
    char *banner;   /* NULL: "HOST ESMTP smtp-emulator" */

    char *tls_cert, *tls_key, *tls_ca; /* NULL: defaults under certs/ */
    bool no_tls;                       /* --no-tls: never offer TLS */

    uint64_t max_message_size;
    unsigned max_recipients;
    unsigned max_connections;
    unsigned idle_timeout; /* seconds */
    double shutdown_grace; /* seconds */
    unsigned hard_error_limit;
    unsigned soft_error_limit;
    double error_delay; /* seconds added per reply past the soft limit */
    size_t max_line;    /* command line cap (Postfix: 2048) */

    enum log_format log_format;
    enum log_level log_level;
    char *log_file; /* NULL: stderr */

    char *spool_dir;
    unsigned max_messages;
    uint64_t max_store_bytes;
    unsigned max_sessions; /* session records kept for the API */

    struct cidr_list xclient_from;

    /* Scenarios (issue 4) */
    char *scenario; /* default scenario name or path */
    struct config_param *params;
    size_t n_params;
    bool seed_set;
    uint64_t seed;
    double clock_offset;
    uint64_t lua_mem_limit;
    uint64_t lua_instr_limit;

    /* Control API (issue 5) */
    char api_host[IP_STR_MAX];
    uint16_t api_port;
    bool api_enabled;
    char *api_token;

    unsigned workers;
    char *user; /* drop privileges to this user after binding */

    /* Shared scenario state (issue 11). */
    char *state_url;            /* NULL: in memory; "redis://HOST:PORT[/DB]" */
    char *state_prefix;         /* key prefix in Redis */
    bool state_fallback_memory; /* Redis down: use local memory */
    double state_timeout;       /* seconds a Redis call may take */
    char *instance_id;          /* names this replica in the API */
};

enum config_result { CONFIG_OK, CONFIG_ERROR };

/*
 * Parse argv (argv[0] is skipped). On CONFIG_ERROR `err` holds one line
 * naming the offending flag or value. The config owns all its strings; free
 * with config_cleanup() in every case.
 */
enum config_result config_parse(int argc, char *const argv[],
                                struct config *out, char *err, size_t errlen);
void config_cleanup(struct config *c);

/* "HOST:PORT" or "[V6]:PORT", with an optional "=SCENARIO" suffix when
 * `scenario` is non-NULL (it then receives an owned string or NULL). */
int config_parse_hostport(const char *s, char *host, size_t hostcap,
                          uint16_t *port, char **scenario);
/* "redis://HOST[:PORT][/DB]": HOST an IPv4 address, "[IPv6]" or a DNS
 * name (letters, digits, '-', '_', '.'); PORT defaults to 6379. The host
 * is written without brackets, into up to REDIS_HOST_MAX bytes. */
#define REDIS_HOST_MAX 256
int config_parse_redis_url(const char *s, char *host, size_t hostcap,
                           uint16_t *port, unsigned *db);
/* "10240000", "10M", "64k": bytes; -1 on junk. */
int config_parse_size(const char *s, uint64_t *out);

/* The option list, for --help. */
extern const char config_usage[];

#endif
