/*
 * scenario: the registry of scenario sources and selections, and the CLI
 * actions that describe them. Files are read once at start-up (and again on
 * reload), so a syntax error is reported before any client connects and
 * workers load from memory. Checking a scenario means running its top level
 * in a throwaway Lua state (script_check), which also validates parameters.
 */
#include "scenario.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "emu.h"
#include "script.h"
#include "util.h"

struct scenario_src {
    char *name; /* "greylisting", or the path for a file given by path */
    char *path;
    char *text;
    size_t len;
};

struct scenario_set {
    pthread_mutex_t mu;
    struct scenario_src *srcs;
    size_t n_srcs;
    struct scenario_src *libs; /* lua/NAME.lua, by NAME */
    size_t n_libs;
    struct scenario_conf *def;
    struct scenario_conf **listener; /* NULL entries: the default */
    size_t n_listeners;
    const struct config *cfg;
    uint64_t next_id;
};

static void
src_cleanup(struct scenario_src *s)
{
    emu_free(s->name);
    emu_free(s->path);
    emu_free(s->text);
    memset(s, 0, sizeof(*s));
}

static void
conf_free(struct scenario_conf *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        emu_free(c->keys[i]);
        emu_free(c->vals[i]);
    }
    emu_free(c->keys);
    emu_free(c->vals);
    emu_free(c->name);
    emu_free(c);
}

void
scenario_load_free(struct scenario_load *l)
{
    for (size_t i = 0; i < l->n; i++) {
        emu_free(l->keys[i]);
        emu_free(l->vals[i]);
    }
    emu_free(l->keys);
    emu_free(l->vals);
    emu_free(l->name);
    emu_free(l->path);
    emu_free(l->text);
    memset(l, 0, sizeof(*l));
}

static int
read_file(const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read scenario '%s': %s", path,
                 strerror(errno));
        return -1;
    }
    struct buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (b.len + n > 4 * 1024 * 1024 || buf_append(&b, chunk, n) < 0) {
            fclose(f);
            buf_cleanup(&b);
            snprintf(err, errlen, "'%s' is too large or memory ran out", path);
            return -1;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        buf_cleanup(&b);
        snprintf(err, errlen, "cannot read '%s'", path);
        return -1;
    }
    if (buf_reserve(&b, 0) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *text = buf_steal(&b, len);
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every .lua file of DIR, sorted by name, into *out. */
static int
read_dir(const char *dir, struct scenario_src **out, size_t *n, char *err,
         size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0; /* no directory: nothing there */
    char **names = NULL;
    size_t nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".lua") != 0 ||
            de->d_name[0] == '.')
            continue;
        char **nv = emu_realloc(names, (nn + 1) * sizeof(*names));
        if (nv == NULL)
            break;
        names = nv;
        if ((names[nn] = emu_strndup(de->d_name, l - 4)) != NULL)
            nn++;
    }
    closedir(d);
    qsort(names, nn, sizeof(*names), cmp_str);
    int rc = 0;
    *out = emu_calloc(nn ? nn : 1, sizeof(**out));
    for (size_t i = 0; i < nn; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.lua", dir, names[i]);
        if (rc == 0 && *out) {
            struct scenario_src *s = &(*out)[*n];
            if (read_file(path, &s->text, &s->len, err, errlen) < 0) {
                rc = -1;
            } else {
                s->name = names[i];
                names[i] = NULL;
                s->path = emu_strdup(path);
                (*n)++;
            }
        }
        emu_free(names[i]);
    }
    emu_free(names);
    if (*out == NULL && nn) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return rc;
}

static bool
is_path(const char *name)
{
    size_t l = strlen(name);
    return strchr(name, '/') != NULL ||
           (l > 4 && !strcmp(name + l - 4, ".lua"));
}

static struct scenario_src *
find_src(struct scenario_set *set, const char *name)
{
    for (size_t i = 0; i < set->n_srcs; i++)
        if (strcmp(set->srcs[i].name, name) == 0)
            return &set->srcs[i];
    return NULL;
}

/* Make sure a scenario given by path is in the set. */
static struct scenario_src *
ensure_src(struct scenario_set *set, const char *name, char *err, size_t errlen)
{
    struct scenario_src *s = find_src(set, name);
    if (s)
        return s;
    if (!is_path(name)) {
        snprintf(err, errlen,
                 "unknown scenario '%s' (see --list-scenarios; a file must be "
                 "given as a path ending in .lua)",
                 name);
        return NULL;
    }
    struct scenario_src ns = {0};
    if (read_file(name, &ns.text, &ns.len, err, errlen) < 0)
        return NULL;
    ns.name = emu_strdup(name);
    ns.path = emu_strdup(name);
    struct scenario_src *nv =
        emu_realloc(set->srcs, (set->n_srcs + 1) * sizeof(*nv));
    if (ns.name == NULL || ns.path == NULL || nv == NULL) {
        src_cleanup(&ns);
        if (nv)
            set->srcs = nv;
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    set->srcs = nv;
    set->srcs[set->n_srcs] = ns;
    return &set->srcs[set->n_srcs++];
}

static int
conf_add(struct scenario_conf *c, const char *k, const char *v)
{
    /* A later value for the same key wins. */
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->keys[i], k) == 0) {
            char *nv = emu_strdup(v);
            if (nv == NULL)
                return -1;
            emu_free(c->vals[i]);
            c->vals[i] = nv;
            return 0;
        }
    }
    char **nk = emu_realloc(c->keys, (c->n + 1) * sizeof(char *));
    if (nk == NULL)
        return -1;
    c->keys = nk;
    char **nvv = emu_realloc(c->vals, (c->n + 1) * sizeof(char *));
    if (nvv == NULL)
        return -1;
    c->vals = nvv;
    c->keys[c->n] = emu_strdup(k);
    c->vals[c->n] = emu_strdup(v);
    if (c->keys[c->n] == NULL || c->vals[c->n] == NULL) {
        emu_free(c->keys[c->n]);
        emu_free(c->vals[c->n]);
        return -1;
    }
    c->n++;
    return 0;
}

/* A selection of `name`: --set NAME.key=value first, then, for the
 * default scenario, the bare --set key=value. */
static struct scenario_conf *
conf_new(struct scenario_set *set, const char *name, bool is_default)
{
    struct scenario_conf *c = emu_calloc(1, sizeof(*c));
    if (c == NULL || (c->name = emu_strdup(name)) == NULL) {
        conf_free(c);
        return NULL;
    }
    c->id = ++set->next_id;
    const struct config *cfg = set->cfg;
    for (size_t i = 0; i < cfg->n_params; i++) {
        const struct config_param *p = &cfg->params[i];
        if (p->scenario && strcmp(p->scenario, name) == 0 &&
            conf_add(c, p->key, p->value) < 0)
            goto fail;
    }
    for (size_t i = 0; is_default && i < cfg->n_params; i++) {
        const struct config_param *p = &cfg->params[i];
        if (p->scenario == NULL && conf_add(c, p->key, p->value) < 0)
            goto fail;
    }
    return c;
fail:
    conf_free(c);
    return NULL;
}

static int
conf_check(struct emu *e, struct scenario_set *set, struct scenario_conf *c,
           char *err, size_t errlen)
{
    struct scenario_src *src = ensure_src(set, c->name, err, errlen);
    if (src == NULL)
        return -1;
    struct scenario_info *info = emu_calloc(1, sizeof(*info));
    if (info == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = script_check(
        e, src->path, src->text, src->len, (const char *const *)c->keys,
        (const char *const *)c->vals, c->n, info, err, errlen);
    emu_free(info);
    return rc;
}

static struct scenario_set *
set_new(struct emu *e, const struct config *cfg, char *err, size_t errlen)
{
    struct scenario_set *set = emu_calloc(1, sizeof(*set));
    if (set == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&set->mu, NULL);
    set->cfg = cfg;
    e->scenarios = set;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/scenarios", e->base_dir);
    if (read_dir(dir, &set->srcs, &set->n_srcs, err, errlen) < 0)
        return NULL;
    snprintf(dir, sizeof(dir), "%s/lua", e->base_dir);
    if (read_dir(dir, &set->libs, &set->n_libs, err, errlen) < 0)
        return NULL;
    return set;
}

int
scenario_setup(struct emu *e, const struct config *cfg, char *err,
               size_t errlen)
{
    struct scenario_set *set = set_new(e, cfg, err, errlen);
    if (set == NULL)
        return -1;
    set->def = conf_new(set, cfg->scenario, true);
    set->n_listeners = cfg->n_listeners;
    set->listener = emu_calloc(cfg->n_listeners ? cfg->n_listeners : 1,
                               sizeof(*set->listener));
    if (set->def == NULL || set->listener == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char sub[900];
    if (conf_check(e, set, set->def, sub, sizeof(sub)) < 0) {
        snprintf(err, errlen, "--scenario %s: %s", cfg->scenario, sub);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const char *name = cfg->listeners[i].scenario;
        if (name == NULL)
            continue;
        set->listener[i] = conf_new(set, name, false);
        if (set->listener[i] == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (conf_check(e, set, set->listener[i], sub, sizeof(sub)) < 0) {
            snprintf(err, errlen, "listener %s:%u=%s: %s",
                     cfg->listeners[i].host, cfg->listeners[i].port, name, sub);
            return -1;
        }
    }
    /* --set NAME.key=value for a scenario no listener uses yet: check it
     * now rather than when the API selects that scenario. */
    for (size_t i = 0; i < cfg->n_params; i++) {
        const char *name = cfg->params[i].scenario;
        if (name == NULL)
            continue;
        struct scenario_conf *c = conf_new(set, name, false);
        if (c == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int rc = conf_check(e, set, c, sub, sizeof(sub));
        conf_free(c);
        if (rc < 0) {
            snprintf(err, errlen, "--set %s.%s: %s", name, cfg->params[i].key,
                     sub);
            return -1;
        }
    }
    return 0;
}

void
scenario_teardown(struct emu *e)
{
    struct scenario_set *set = e->scenarios;
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n_srcs; i++)
        src_cleanup(&set->srcs[i]);
    emu_free(set->srcs);
    for (size_t i = 0; i < set->n_libs; i++)
        src_cleanup(&set->libs[i]);
    emu_free(set->libs);
    conf_free(set->def);
    for (size_t i = 0; set->listener && i < set->n_listeners; i++)
        conf_free(set->listener[i]);
    emu_free(set->listener);
    pthread_mutex_destroy(&set->mu);
    emu_free(set);
    e->scenarios = NULL;
}

static char **
copy_strv(char *const *v, size_t n)
{
    char **o = emu_calloc(n ? n : 1, sizeof(char *));
    if (o == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if ((o[i] = emu_strdup(v[i])) == NULL) {
            for (size_t k = 0; k < i; k++)
                emu_free(o[k]);
            emu_free(o);
            return NULL;
        }
    }
    return o;
}

uint64_t
scenario_current(struct emu *e, size_t listener, struct scenario_load *out)
{
    struct scenario_set *set = e->scenarios;
    if (set == NULL)
        return 0;
    pthread_mutex_lock(&set->mu);
    struct scenario_conf *c =
        listener < set->n_listeners && set->listener[listener]
            ? set->listener[listener]
            : set->def;
    uint64_t id = c ? c->id : 0;
    if (out && c) {
        memset(out, 0, sizeof(*out));
        struct scenario_src *src = find_src(set, c->name);
        out->id = c->id;
        out->name = emu_strdup(c->name);
        out->path = src ? emu_strdup(src->path) : NULL;
        out->text = src ? emu_strndup(src->text, src->len) : NULL;
        out->len = src ? src->len : 0;
        out->keys = copy_strv(c->keys, c->n);
        out->vals = copy_strv(c->vals, c->n);
        out->n = c->n;
        if (!out->name || !out->path || !out->text || !out->keys ||
            !out->vals) {
            out->n = out->keys && out->vals ? out->n : 0;
            scenario_load_free(out);
            id = 0;
        }
    }
    pthread_mutex_unlock(&set->mu);
    return id;
}

char *
scenario_lib_text(struct emu *e, const char *name, size_t *len)
{
    struct scenario_set *set = e->scenarios;
    if (set == NULL)
        return NULL;
    char *t = NULL;
    pthread_mutex_lock(&set->mu);
    for (size_t i = 0; i < set->n_libs; i++) {
        if (strcmp(set->libs[i].name, name) == 0) {
            t = emu_strndup(set->libs[i].text, set->libs[i].len);
            *len = set->libs[i].len;
            break;
        }
    }
    pthread_mutex_unlock(&set->mu);
    return t;
}

/* ---- command-line actions ---- */

static void
print_describe(const struct scenario_info *in)
{
    printf("%s: %s\n", in->name, in->description);
    if (in->n_params) {
        printf("\nParameters (--set KEY=VALUE):\n");
        for (size_t i = 0; i < in->n_params; i++) {
            const struct scenario_param_info *p = &in->params[i];
            printf("  %-18s %s, default %s%s%s%s\n", p->name, p->type,
                   p->def[0] ? p->def : "(empty)",
                   p->choices[0] ? "; one of: " : "", p->choices, "");
            if (p->help[0])
                printf("  %-18s %s\n", "", p->help);
        }
    } else {
        printf("\nNo parameters.\n");
    }
    if (in->replies[0])
        printf("\nWhat it answers:\n%s\n", in->replies);
}

int
scenario_cli(struct emu *e, const struct config *cfg, char *err, size_t errlen)
{
    struct scenario_set *set = set_new(e, cfg, err, errlen);
    int status = 0;
    struct scenario_info *info = emu_calloc(1, sizeof(*info));
    if (set == NULL || info == NULL) {
        fprintf(stderr, "smtp-emulator: %s\n", set ? "out of memory" : err);
        status = 2;
        goto out;
    }
    switch (cfg->action) {
    case CONFIG_LIST_SCENARIOS:
        for (size_t i = 0; i < set->n_srcs; i++) {
            struct scenario_src *s = &set->srcs[i];
            if (script_check(e, s->path, s->text, s->len, NULL, NULL, 0, info,
                             err, errlen) < 0) {
                fprintf(stderr, "smtp-emulator: %s\n", err);
                status = 2;
                continue;
            }
            printf("%-20s %s\n", s->name, info->description);
        }
        break;
    case CONFIG_DESCRIBE:
    case CONFIG_CHECK_SCENARIO: {
        struct scenario_src *s = ensure_src(set, cfg->action_arg, err, errlen);
        if (s == NULL || script_check(e, s->path, s->text, s->len, NULL, NULL,
                                      0, info, err, errlen) < 0) {
            fprintf(stderr, "smtp-emulator: %s\n", err);
            status = 2;
            break;
        }
        if (cfg->action == CONFIG_DESCRIBE)
            print_describe(info);
        else
            printf("%s: ok (scenario '%s': %s)\n", s->path, info->name,
                   info->description);
        break;
    }
    case CONFIG_RUN:
    case CONFIG_HELP:
    case CONFIG_VERSION:
    case CONFIG_HEALTHCHECK:
        break;
    }
out:
    emu_free(info);
    scenario_teardown(e);
    return status;
}

char *
scenario_source(struct emu *e, const char *name, char **path, size_t *len)
{
    struct scenario_set *set = e->scenarios;
    char *t = NULL;
    *path = NULL;
    if (set == NULL)
        return NULL;
    pthread_mutex_lock(&set->mu);
    struct scenario_src *src = find_src(set, name);
    if (src) {
        t = emu_strndup(src->text, src->len);
        *path = emu_strdup(src->path);
        *len = src->len;
        if (t == NULL || *path == NULL) {
            emu_free(t);
            emu_free(*path);
            t = NULL;
            *path = NULL;
        }
    }
    pthread_mutex_unlock(&set->mu);
    return t;
}

/* ---- the control API's view ---- */

int
scenario_list(struct emu *e, struct scenario_info **out, size_t *n)
{
    struct scenario_set *set = e->scenarios;
    *out = NULL;
    *n = 0;
    if (set == NULL)
        return 0;
    /* Copy the sources first: checking takes a while, keep the lock
     * short. */
    pthread_mutex_lock(&set->mu);
    size_t count = set->n_srcs;
    struct scenario_src *copy = emu_calloc(count ? count : 1, sizeof(*copy));
    for (size_t i = 0; copy && i < count; i++) {
        copy[i].name = emu_strdup(set->srcs[i].name);
        copy[i].path = emu_strdup(set->srcs[i].path);
        copy[i].text = emu_strndup(set->srcs[i].text, set->srcs[i].len);
        copy[i].len = set->srcs[i].len;
    }
    pthread_mutex_unlock(&set->mu);
    if (copy == NULL)
        return -1;
    struct scenario_info *infos = emu_calloc(count ? count : 1, sizeof(*infos));
    int rc = infos ? 0 : -1;
    for (size_t i = 0; infos && i < count; i++) {
        char err[512];
        if (copy[i].name == NULL || copy[i].path == NULL ||
            copy[i].text == NULL)
            continue;
        if (script_check(e, copy[i].path, copy[i].text, copy[i].len, NULL, NULL,
                         0, &infos[*n], err, sizeof(err)) == 0) {
            /* List files given by path under their declared name. */
            if (!is_path(copy[i].name))
                str_copy(infos[*n].name, sizeof(infos[*n].name), copy[i].name);
            (*n)++;
        }
    }
    for (size_t i = 0; i < count; i++)
        src_cleanup(&copy[i]);
    emu_free(copy);
    *out = infos;
    return rc;
}

int
scenario_get(struct emu *e, size_t listener, struct scenario_load *out,
             bool *is_default)
{
    struct scenario_set *set = e->scenarios;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&set->mu);
    struct scenario_conf *c = set->def;
    *is_default = true;
    if (listener < set->n_listeners && set->listener[listener]) {
        c = set->listener[listener];
        *is_default = false;
    }
    out->id = c->id;
    out->name = emu_strdup(c->name);
    out->keys = copy_strv(c->keys, c->n);
    out->vals = copy_strv(c->vals, c->n);
    out->n = c->n;
    int rc = 0;
    if (!out->name || !out->keys || !out->vals) {
        out->n = out->keys && out->vals ? out->n : 0;
        scenario_load_free(out);
        rc = -1;
    }
    pthread_mutex_unlock(&set->mu);
    return rc;
}

int
scenario_select(struct emu *e, size_t listener, const char *name,
                const char *const *keys, const char *const *vals, size_t n,
                char *err, size_t errlen)
{
    struct scenario_set *set = e->scenarios;
    if (listener != SIZE_MAX && listener >= set->n_listeners) {
        snprintf(err, errlen, "no such listener");
        return -1;
    }
    if (name == NULL) { /* back to the default */
        pthread_mutex_lock(&set->mu);
        conf_free(set->listener[listener]);
        set->listener[listener] = NULL;
        pthread_mutex_unlock(&set->mu);
        return 0;
    }
    /* Build and check outside the lock (loading takes a while); only the
     * id allocation and the swap happen under it. */
    pthread_mutex_lock(&set->mu);
    struct scenario_conf *c = conf_new(set, name, false);
    int found = c ? (ensure_src(set, name, err, errlen) != NULL) : 0;
    pthread_mutex_unlock(&set->mu);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (!found) {
        conf_free(c);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (conf_add(c, keys[i], vals[i]) < 0) {
            conf_free(c);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    pthread_mutex_lock(&set->mu);
    struct scenario_src *src = find_src(set, name);
    struct scenario_src copy = {0};
    if (src) {
        copy.path = emu_strdup(src->path);
        copy.text = emu_strndup(src->text, src->len);
        copy.len = src->len;
    }
    pthread_mutex_unlock(&set->mu);
    if (copy.path == NULL || copy.text == NULL) {
        src_cleanup(&copy);
        conf_free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct scenario_info *info = emu_calloc(1, sizeof(*info));
    int rc = info ? script_check(e, copy.path, copy.text, copy.len,
                                 (const char *const *)c->keys,
                                 (const char *const *)c->vals, c->n, info, err,
                                 errlen)
                  : -1;
    emu_free(info);
    src_cleanup(&copy);
    if (rc < 0) {
        conf_free(c);
        return -1;
    }
    pthread_mutex_lock(&set->mu);
    struct scenario_conf **slot =
        listener == SIZE_MAX ? &set->def : &set->listener[listener];
    conf_free(*slot);
    *slot = c;
    pthread_mutex_unlock(&set->mu);
    return 0;
}

/* Give every selection of scenario `name` a new id, so workers load the
 * new source for their next session. */
static void
bump(struct scenario_set *set, const char *name)
{
    if (set->def && strcmp(set->def->name, name) == 0)
        set->def->id = ++set->next_id;
    for (size_t i = 0; i < set->n_listeners; i++)
        if (set->listener[i] && strcmp(set->listener[i]->name, name) == 0)
            set->listener[i]->id = ++set->next_id;
}

int
scenario_reload(struct emu *e)
{
    struct scenario_set *set = e->scenarios;
    char err[1024];
    int failed = 0;
    /* Helper modules first: scenarios are checked against the new ones. */
    char dir[4200];
    struct scenario_src *libs = NULL;
    size_t n_libs = 0;
    snprintf(dir, sizeof(dir), "%s/lua", e->base_dir);
    if (read_dir(dir, &libs, &n_libs, err, sizeof(err)) == 0) {
        pthread_mutex_lock(&set->mu);
        struct scenario_src *old = set->libs;
        size_t n_old = set->n_libs;
        set->libs = libs;
        set->n_libs = n_libs;
        pthread_mutex_unlock(&set->mu);
        for (size_t i = 0; i < n_old; i++)
            src_cleanup(&old[i]);
        emu_free(old);
    } else {
        log_msg(e->log, LOG_LEVEL_ERROR, "reload", "%s", err);
        failed++;
        for (size_t i = 0; i < n_libs; i++)
            src_cleanup(&libs[i]);
        emu_free(libs);
    }
    pthread_mutex_lock(&set->mu);
    size_t n = set->n_srcs;
    pthread_mutex_unlock(&set->mu);
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&set->mu);
        char *path = emu_strdup(set->srcs[i].path);
        char *name = emu_strdup(set->srcs[i].name);
        pthread_mutex_unlock(&set->mu);
        char *text = NULL;
        size_t len = 0;
        struct scenario_info *info = emu_calloc(1, sizeof(*info));
        if (path == NULL || name == NULL || info == NULL ||
            read_file(path, &text, &len, err, sizeof(err)) < 0 ||
            script_check(e, path, text, len, NULL, NULL, 0, info, err,
                         sizeof(err)) < 0) {
            log_msg(e->log, LOG_LEVEL_ERROR, "reload",
                    "%s: kept the previous version: %s", path ? path : "?",
                    err);
            failed++;
            emu_free(text);
        } else {
            pthread_mutex_lock(&set->mu);
            struct scenario_src *src = &set->srcs[i];
            bool changed = src->len != len || memcmp(src->text, text, len);
            emu_free(src->text);
            src->text = text;
            src->len = len;
            bump(set, name); /* lua/ may have changed too */
            pthread_mutex_unlock(&set->mu);
            if (changed)
                log_msg(e->log, LOG_LEVEL_INFO, "reload", "%s: reloaded", path);
        }
        emu_free(info);
        emu_free(path);
        emu_free(name);
    }
    return failed;
}
