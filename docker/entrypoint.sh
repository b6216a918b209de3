#!/bin/sh
# Container entrypoint for smtp-emulator. It turns SMTP_EMULATOR_* environment
# variables into command-line options, makes test certificates when none are
# mounted, and execs the binary, so that it runs as PID 1 and gets SIGTERM
# itself. Options given to `docker run IMAGE ...` (or compose's `command:`)
# come last and so win over the environment. A first argument that is not an
# option is run as a command instead (`docker run --rm IMAGE sh`).
# docs/docker.md lists the variables.
set -eu
set -f # no globbing: SMTP_EMULATOR_ARGS and the lists are split on spaces only

say() { echo "entrypoint: $*" >&2; }

case "${1:-}" in
"" | -*) ;;
*) exec "$@" ;;
esac

SHARE=/usr/local/share/smtp-emulator
# The copy with CAP_NET_BIND_SERVICE, unless the capability is not in the
# bounding set: then the kernel refuses to execute it, and the plain binary
# runs (ports below 1024 then work only where the runtime lets any user bind
# them, as Docker does by default).
BIN=/usr/local/libexec/smtp-emulator/smtp-emulator
capbnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status 2>/dev/null || true)
if [ -z "$capbnd" ] || [ $((0x$capbnd & 0x400)) = 0 ] || [ ! -x "$BIN" ]; then
    BIN=/usr/local/bin/smtp-emulator
    low=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)
    if [ "$(id -u)" != 0 ] && [ "$low" -gt 25 ]; then
        say "CAP_NET_BIND_SERVICE is not in the bounding set: ports below $low will be refused (add it back with cap_add, or listen on higher ports)"
    fi
fi

# The options taken from the environment are appended after the command-line
# arguments and rotated to the front at the end (POSIX sh has no arrays).
nuser=$#

# Listeners: each variable is a space-separated list of HOST:PORT[=SCENARIO];
# set one to the empty string to turn it off.
# shellcheck disable=SC2086
for a in ${SMTP_EMULATOR_LISTEN-0.0.0.0:25} ${SMTP_EMULATOR_SUBMISSION-0.0.0.0:587}; do
    set -- "$@" --listen "$a"
done
# shellcheck disable=SC2086
for a in ${SMTP_EMULATOR_LISTEN_TLS-0.0.0.0:465}; do
    set -- "$@" --listen-tls "$a"
done
# shellcheck disable=SC2086
for a in ${SMTP_EMULATOR_PROXY_PROTOCOL:-}; do
    set -- "$@" --proxy-protocol "$a"
done
if [ -n "${SMTP_EMULATOR_API-0.0.0.0:8025}" ]; then
    set -- "$@" --api "${SMTP_EMULATOR_API-0.0.0.0:8025}"
fi
[ -n "${SMTP_EMULATOR_API_TOKEN:-}" ] && set -- "$@" --api-token "$SMTP_EMULATOR_API_TOKEN"
[ -n "${SMTP_EMULATOR_HOSTNAME:-}" ] && set -- "$@" --hostname "$SMTP_EMULATOR_HOSTNAME"
[ -n "${SMTP_EMULATOR_BANNER:-}" ] && set -- "$@" --banner "$SMTP_EMULATOR_BANNER"
[ -n "${SMTP_EMULATOR_SCENARIO:-}" ] && set -- "$@" --scenario "$SMTP_EMULATOR_SCENARIO"
# SMTP_EMULATOR_SET="k=v;scenario.k=v": one --set per item.
if [ -n "${SMTP_EMULATOR_SET:-}" ]; then
    old_ifs=$IFS
    IFS=';
'
    for kv in $SMTP_EMULATOR_SET; do
        IFS=$old_ifs
        kv=$(printf '%s' "$kv" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
        [ -n "$kv" ] && set -- "$@" --set "$kv"
    done
    IFS=$old_ifs
fi
[ -n "${SMTP_EMULATOR_SPOOL:-}" ] && set -- "$@" --spool "$SMTP_EMULATOR_SPOOL"
[ -n "${SMTP_EMULATOR_LOG_FORMAT:-}" ] && set -- "$@" --log-format "$SMTP_EMULATOR_LOG_FORMAT"
[ -n "${SMTP_EMULATOR_LOG_LEVEL:-}" ] && set -- "$@" --log-level "$SMTP_EMULATOR_LOG_LEVEL"

# TLS: certificates from SMTP_EMULATOR_CERT_DIR (default /certs) when
# server.pem and server.key are there; otherwise new test certificates, made
# in that directory when it is writable and holds no .pem yet (so that a
# volume shared with the clients carries ca.pem to them), else in /tmp.
# Skipped when the options name certificates themselves or turn TLS off.
# The check below looks at the original arguments: $1..$nuser.
user_args_have() {
    opt=$1
    i=0
    shift
    for a in "$@"; do
        i=$((i + 1))
        [ $i -gt "$nuser" ] && break
        case $a in
        "$opt" | "$opt"=*) return 0 ;;
        esac
    done
    # shellcheck disable=SC2086
    for a in ${SMTP_EMULATOR_ARGS:-}; do
        case $a in
        "$opt" | "$opt"=*) return 0 ;;
        esac
    done
    return 1
}
if [ "${SMTP_EMULATOR_TLS:-on}" = off ]; then
    set -- "$@" --no-tls
elif ! user_args_have --tls-cert "$@" && ! user_args_have --no-tls "$@"; then
    dir=${SMTP_EMULATOR_CERT_DIR:-/certs}
    if [ -f "$dir/server.pem" ] && [ -f "$dir/server.key" ]; then
        say "using the certificate in $dir"
    else
        if ! { [ -d "$dir" ] && [ -w "$dir" ] && [ -z "$(find "$dir" -maxdepth 1 -name '*.pem' 2>/dev/null)" ]; }; then
            dir=${TMPDIR:-/tmp}/smtp-emulator-certs
        fi
        if ! "$SHARE/certs/gen.sh" "$dir" >/dev/null; then
            say "could not make test certificates in $dir"
            exit 1
        fi
        say "made test certificates in $dir (clients trust $dir/ca.pem)"
    fi
    set -- "$@" --tls-cert "$dir/server.pem" --tls-key "$dir/server.key"
    [ -f "$dir/ca.pem" ] && set -- "$@" --tls-ca "$dir/ca.pem"
fi

# shellcheck disable=SC2086
for a in ${SMTP_EMULATOR_ARGS:-}; do
    set -- "$@" "$a"
done

# Rotate the command-line arguments to the end.
i=0
while [ $i -lt "$nuser" ]; do
    a=$1
    shift
    set -- "$@" "$a"
    i=$((i + 1))
done

# Say what runs (the API token masked), for whoever reads `docker logs`.
show=""
mask=""
for a in "$@"; do
    if [ -n "$mask" ]; then
        a="***"
        mask=""
    fi
    case $a in
    --api-token) mask=1 ;;
    --api-token=*) a="--api-token=***" ;;
    esac
    case $a in
    *[[:space:]]* | "") a="'$a'" ;;
    esac
    show="$show $a"
done
say "running $BIN$show"
exec "$BIN" "$@"
