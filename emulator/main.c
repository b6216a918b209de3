/*
 * main: parses the command line, builds the one struct emu, loads TLS and
 * scenarios, binds the listeners, drops privileges, runs the workers, and
 * maps every failure to the exit status DESIGN.md promises: 2 for anything
 * wrong in what the user gave, 1 for a failure of the environment, 0 after
 * SIGTERM or SIGINT.
 */
#include <errno.h>
#include <stdarg.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "emu.h"
#include "healthcheck.h"
#include "kv.h"
#include "log.h"
#include "net.h"
#include "scenario.h"
#include "server.h"
#include "spool.h"
#include "store.h"

#ifndef EMU_VERSION
#define EMU_VERSION "0.1.0"
#endif
#ifndef EMU_PREFIX
#define EMU_PREFIX "/usr/local"
#endif

/* Transcripts are capped per session so a flood cannot exhaust memory. */
#define TRANSCRIPT_MAX (1024 * 1024)
/* Scenario state entries (greylisting triplets, counters). */
#define KV_MAX_ENTRIES 1000000

static int die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
die(int status, const char *fmt, ...)
{
    va_list ap;
    fputs("smtp-emulator: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

static bool
is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* scenarios/ and lua/ live next to the binary in the build tree
 * (build/smtp-emulator, build/asan/smtp-emulator), else under PREFIX. */
static void
find_base_dir(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        /* build/, build/asan/, and PREFIX/bin -> PREFIX/share/... */
        const char *ups[] = {"/..", "/../..", "/../share/smtp-emulator"};
        for (size_t i = 0; i < EMU_ARRAY_LEN(ups); i++) {
            char cand[PATH_MAX + 16], probe[PATH_MAX + 32];
            snprintf(cand, sizeof(cand), "%s%s", exe, ups[i]);
            snprintf(probe, sizeof(probe), "%s/scenarios", cand);
            if (is_dir(probe)) {
                char *real = realpath(cand, NULL);
                str_copy(out, cap, real ? real : cand);
                free(real);
                return;
            }
        }
    }
    snprintf(out, cap, "%s/share/smtp-emulator", EMU_PREFIX);
}

static void
raise_fd_limit(struct emu *e)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    /* Sessions plus listeners, the API, the log and a little slack. */
    rlim_t need = (rlim_t)e->cfg->max_connections;
    rlim_t want = need + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
        log_msg(e->log, LOG_LEVEL_WARN, "limits",
                "open file limit is %llu, below what --max-connections %u "
                "needs",
                (unsigned long long)rl.rlim_cur, e->cfg->max_connections);
}

static int
drop_privileges(const char *user, char *err, size_t errlen)
{
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        snprintf(err, errlen, "--user: no such user '%s'", user);
        return 2;
    }
    if (setgroups(0, NULL) < 0 && errno != EPERM) {
        snprintf(err, errlen, "setgroups: %s", strerror(errno));
        return 1;
    }
    if (setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
        snprintf(err, errlen, "cannot become user '%s': %s", user,
                 strerror(errno));
        return 1;
    }
    if (setuid(0) == 0 && pw->pw_uid != 0) {
        snprintf(err, errlen, "privileges could not be dropped");
        return 1;
    }
    return 0;
}

/* Pick certificate files: the flags, else certs/ under the base dir. */
static int
setup_tls(struct emu *e, struct config *cfg, char *err, size_t errlen)
{
    char cert[PATH_MAX + 64], key[PATH_MAX + 64], ca[PATH_MAX + 64];
    bool explicit_cert = cfg->tls_cert != NULL;
    if (cfg->no_tls)
        return 0;
    if (explicit_cert) {
        str_copy(cert, sizeof(cert), cfg->tls_cert);
        str_copy(key, sizeof(key), cfg->tls_key);
    } else {
        snprintf(cert, sizeof(cert), "%s/certs/server.pem", e->base_dir);
        snprintf(key, sizeof(key), "%s/certs/server.key", e->base_dir);
        if (!is_file(cert) || !is_file(key)) {
            log_msg(e->log, LOG_LEVEL_WARN, "tls",
                    "no certificate at %s: STARTTLS is not offered (run "
                    "certs/gen.sh or give --tls-cert and --tls-key)",
                    cert);
            return 0;
        }
    }
    const char *ca_path = NULL;
    if (cfg->tls_ca) {
        ca_path = cfg->tls_ca;
    } else {
        snprintf(ca, sizeof(ca), "%s/certs/ca.pem", e->base_dir);
        if (is_file(ca))
            ca_path = ca;
    }
    e->tls = net_tls_new(cert, key, ca_path, err, errlen);
    if (e->tls == NULL)
        return -1;
    char dir[PATH_MAX + 16];
    snprintf(dir, sizeof(dir), "%s/certs", e->base_dir);
    e->tls_cache = net_tls_cache_new(e->tls, cert, key, ca_path, dir);
    if (e->tls_cache == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void
ignore_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

int
main(int argc, char **argv)
{
    static struct config cfg; /* owned by main, read-only after parsing */
    static struct emu e;
    char err[1024];
    int status = 0;

    if (config_parse(argc, argv, &cfg, err, sizeof(err)) != CONFIG_OK) {
        config_cleanup(&cfg);
        return die(2, "%s", err);
    }
    switch (cfg.action) {
    case CONFIG_HELP:
        fputs(config_usage, stdout);
        config_cleanup(&cfg);
        return 0;
    case CONFIG_VERSION:
        printf("smtp-emulator %s\n", EMU_VERSION);
        config_cleanup(&cfg);
        return 0;
    case CONFIG_HEALTHCHECK:
        status =
            healthcheck_run(cfg.action_arg, cfg.api_token, err, sizeof(err));
        if (status != 0)
            fprintf(stderr, "smtp-emulator: healthcheck: %s\n", err);
        config_cleanup(&cfg);
        return status;
    case CONFIG_RUN:
    case CONFIG_LIST_SCENARIOS:
    case CONFIG_DESCRIBE:
    case CONFIG_CHECK_SCENARIO:
        break;
    }
    ignore_sigpipe();
    e.cfg = &cfg;
    if (cfg.hostname == NULL) {
        char host[256];
        if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
            str_copy(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = '\0';
        cfg.hostname = emu_strdup(host);
        if (cfg.hostname == NULL)
            return die(1, "out of memory");
    }
    str_copy(e.hostname, sizeof(e.hostname), cfg.hostname);
    if (cfg.banner)
        str_copy(e.banner, sizeof(e.banner), cfg.banner);
    else
        snprintf(e.banner, sizeof(e.banner), "%s ESMTP smtp-emulator",
                 e.hostname);
    find_base_dir(e.base_dir, sizeof(e.base_dir));
    if (!cfg.seed_set) {
        /* Random unless --seed asks for a replayable run. */
        cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^
                   (uint64_t)(uintptr_t)&e;
    }
    atomic_store(&e.clock_offset, cfg.clock_offset);

    if (cfg.action != CONFIG_RUN) {
        status = scenario_cli(&e, &cfg, err, sizeof(err));
        config_cleanup(&cfg);
        return status;
    }

    e.log = log_new(cfg.log_file, cfg.log_format, cfg.log_level);
    if (e.log == NULL) {
        status = die(2, "--log-file: cannot open '%s': %s", cfg.log_file,
                     strerror(errno));
        goto out;
    }
    if (setup_tls(&e, &cfg, err, sizeof(err)) < 0) {
        status = die(2, "%s", err);
        goto out;
    }
    if (store_init(&e.store, cfg.max_messages, cfg.max_store_bytes,
                   cfg.max_sessions, TRANSCRIPT_MAX) < 0) {
        status = die(1, "out of memory");
        goto out;
    }
    static struct kv kv;
    if (kv_init(&kv, KV_MAX_ENTRIES) < 0) {
        status = die(1, "out of memory");
        goto out_store;
    }
    e.kv = &kv;
    if (scenario_setup(&e, &cfg, err, sizeof(err)) < 0) {
        status = die(2, "%s", err);
        goto out_server;
    }
    raise_fd_limit(&e);
    int rc = server_start(&e, err, sizeof(err));
    if (rc < 0) {
        status = die(rc == -2 ? 2 : 1, "%s", err);
        goto out_server;
    }
    if (cfg.user && e.tls_cache &&
        net_tls_cache_preload(e.tls_cache, err, sizeof(err)) < 0) {
        status = die(2, "%s", err);
        goto out_server;
    }
    if (cfg.user) {
        int drc = drop_privileges(cfg.user, err, sizeof(err));
        if (drc != 0) {
            status = die(drc, "%s", err);
            goto out_server;
        }
    }
    /* After the drop: the spool's tmp/ and new/ are created by, and must
     * be writable for, the user that writes the messages. */
    if (cfg.spool_dir && spool_init(cfg.spool_dir, err, sizeof(err)) < 0) {
        status = die(2, "%s", err);
        goto out_server;
    }
    server_announce(&e);
    status = server_run(&e);
    log_msg(e.log, LOG_LEVEL_INFO, "exit", "stopped");
out_server:
    server_cleanup(&e);
    scenario_teardown(&e);
    if (e.kv)
        kv_cleanup(e.kv);
out_store:
    store_cleanup(&e.store);
out:
    net_tls_cache_free(e.tls_cache);
    net_tls_free(e.tls);
    log_free(e.log);
    config_cleanup(&cfg);
    return status;
}
