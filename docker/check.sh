#!/bin/sh
# Build the smtp-emulator image and test it end to end with compose.
#
#   docker/check.sh build   build the image (what `make docker` runs)
#   docker/check.sh check   build, test the image on its own, run
#                           docker/compose.yml with its example client,
#                           then its `replicas` profile (three replicas
#                           sharing state in Redis) with the replicas
#                           client, tear everything down (`make docker-check`)
#
# It uses a Docker engine when `docker info` answers. Otherwise it uses
# rootful podman, and as root it sets podman up first, as described in
# ../shared/containers.md: the packages, the runc and ulimit settings, a
# debian:bookworm-slim base image made with debootstrap (no registry can be
# reached here), and, for compose, a podman API socket that docker-compose
# talks to. Each step is skipped when already done, so a second run only
# builds (from cache) and tests. The socket service is stopped again at the
# end. Environment: IMAGE (default smtp-emulator:latest), MAX_ADDED_MB (15).
set -eu
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-smtp-emulator:latest}
BASE=debian:bookworm-slim
MAX_ADDED_MB=${MAX_ADDED_MB:-15}
PROJECT="smtp-emulator-check"
SOCK=/run/podman/smtp-emulator-check.sock
WORK=$(mktemp -d /tmp/smtp-emulator-docker.XXXXXX)
SVC_PID=""
STANDALONE=""
COMPOSE_UP=""

NAME=docker-check
[ "${1:-}" = build ] && NAME=docker
say() { echo "$NAME: $*"; }
die() {
    echo "$NAME: FAILED: $*" >&2
    exit 1
}

cleanup() {
    rc=$?
    set +e
    if [ -n "$STANDALONE" ]; then
        $DOCKER rm -f "$STANDALONE" >/dev/null 2>&1
    fi
    if [ -n "$COMPOSE_UP" ]; then
        # With the profile, so that its services go too.
        compose --profile replicas down -v -t 1 >"$WORK/down.log" 2>&1 || cat "$WORK/down.log"
    fi
    if [ -n "$SVC_PID" ]; then
        kill "$SVC_PID" 2>/dev/null
        rm -f "$SOCK"
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

is_root() { [ "$(id -u)" = 0 ]; }

apt_install() {
    # $1: extra apt-get options ("" or --no-install-recommends), then packages
    opts=$1
    shift
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed" || missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    say "installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086
    if ! apt-get install -y -q $opts $missing >"$WORK/apt.log" 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q $opts $missing >"$WORK/apt.log" 2>&1 ||
            { cat "$WORK/apt.log"; die "apt-get install$missing"; }
    fi
}

# --- podman set-up (root only) ---------------------------------------------

podman_packages() {
    # runc explicitly: podman's default crun refuses hybrid cgroups here.
    apt_install "" podman runc debootstrap
    # Without --no-install-recommends docker-compose brings dockerd along.
    apt_install --no-install-recommends docker-compose
}

podman_config() {
    # A drop-in, so that a containers.conf of someone else's stays as it is.
    conf=/etc/containers/containers.conf.d/50-smtp-emulator.conf
    # shellcheck disable=SC3045 # dash and bash both have -H
    hard=$(ulimit -H -n)
    [ "$hard" = unlimited ] && hard=1048576
    [ "$hard" -gt 1048576 ] && hard=1048576
    want=$(cat <<CONF
# Written by smtp-emulator's docker/check.sh (see shared/containers.md):
# podman asks for ulimits above what this machine allows, and crun does not
# support hybrid cgroups.
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
)
    if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
        mkdir -p "$(dirname "$conf")"
        printf '%s\n' "$want" >"$conf"
        say "wrote $conf"
    fi
}

# debian:bookworm-slim cannot be pulled here: make a stand-in with
# debootstrap from the mirror apt uses, trimmed the way the official slim
# image is (no docs, man pages or translations, and dpkg told to keep it so).
podman_base_image() {
    podman image exists "docker.io/library/$BASE" && return 0
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=http://deb.debian.org/debian
    say "no $BASE image: making one with debootstrap from $mirror (about a minute)"
    root=/var/tmp/smtp-emulator-rootfs
    rm -rf "$root"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -20 "$WORK/debootstrap.log"; die "debootstrap"; }
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
        "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    tar -C "$root" -c . | podman import --change 'CMD ["bash"]' - "docker.io/library/$BASE" >/dev/null 2>&1
    rm -rf "$root"
    say "imported docker.io/library/$BASE"
}

podman_socket() {
    mkdir -p "$(dirname "$SOCK")"
    rm -f "$SOCK"
    setsid podman system service --time=0 "unix://$SOCK" \
        >"$WORK/podman-service.log" 2>&1 </dev/null &
    SVC_PID=$!
    export DOCKER_HOST="unix://$SOCK"
    i=0
    until docker_api_ok; do
        i=$((i + 1))
        [ $i -gt 100 ] && { cat "$WORK/podman-service.log"; die "podman socket did not come up"; }
        sleep 0.1
    done
}

docker_api_ok() {
    [ -S "$SOCK" ] && podman --url "unix://$SOCK" version >/dev/null 2>&1
}

# --- engine selection ------------------------------------------------------

engine_init() {
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        ENGINE=docker
        DOCKER=docker
        BUILD_OPTS=""
        return 0
    fi
    if is_root; then
        podman_packages
        podman_config
        podman_base_image
    elif ! command -v podman >/dev/null 2>&1; then
        die "no Docker engine answers 'docker info' and podman is not installed (run as root to set podman up)"
    fi
    ENGINE=podman
    DOCKER=podman
    # HEALTHCHECK is kept only in the Docker image format.
    BUILD_OPTS="--format docker"
}

compose_init() {
    if [ "$ENGINE" = docker ]; then
        if docker compose version >/dev/null 2>&1; then
            COMPOSE="docker compose"
            return 0
        fi
        is_root && ! command -v docker-compose >/dev/null 2>&1 &&
            apt_install --no-install-recommends docker-compose
    else
        podman_socket
    fi
    command -v docker-compose >/dev/null 2>&1 || die "no docker compose"
    COMPOSE=docker-compose
}

compose() {
    $COMPOSE -p "$PROJECT" -f docker/compose.yml "$@"
}

build() {
    say "building $IMAGE with $ENGINE"
    # shellcheck disable=SC2086
    $DOCKER build $BUILD_OPTS -f docker/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
        { tail -40 "$WORK/build.log"; die "image build"; }
    say "built $IMAGE"
    if [ "$ENGINE" = podman ]; then
        # Each changed build leaves an untagged builder image; keep a day's
        # worth as cache and drop the older ones, so the disk does not fill.
        podman image prune -f --filter until=24h >/dev/null 2>&1 || true
    fi
}

inspect() { $DOCKER inspect -f "$1" "$2"; }

# The image itself: its size over the base, its user, its health check.
check_image() {
    base=$($DOCKER image inspect -f '{{.Size}}' "$BASE")
    size=$($DOCKER image inspect -f '{{.Size}}' "$IMAGE")
    added=$(((size - base) / 1000))
    say "image size: $BASE $((base / 1000)) kB, $IMAGE $((size / 1000)) kB: $added kB added (limit ${MAX_ADDED_MB} MB)"
    [ "$added" -le $((MAX_ADDED_MB * 1000)) ] || die "the image adds more than $MAX_ADDED_MB MB to $BASE"
    user=$($DOCKER image inspect -f '{{.Config.User}}' "$IMAGE")
    case $user in
    "" | 0 | 0:* | root | root:*) die "the image runs as root ('$user')" ;;
    esac
    $DOCKER image inspect -f '{{json .Config.Healthcheck}}' "$IMAGE" |
        grep -q -- '--healthcheck' || die "the image has no HEALTHCHECK"
    say "image: user $user, HEALTHCHECK present"
}

# One container on its own, with certificates mounted from the host and
# two ports published: it must serve them as a non-root user, pass its
# health check, and exit 0 within a second of SIGTERM.
check_standalone() {
    certs=$WORK/certs
    ./certs/gen.sh "$certs" >/dev/null
    chmod 644 "$certs"/*.key # the container's user is not root
    STANDALONE=smtp-emulator-check-$$
    $DOCKER run -d --name "$STANDALONE" -v "$certs:/certs:ro" \
        -e SMTP_EMULATOR_HOSTNAME=mx.test -e SMTP_EMULATOR_API_TOKEN=check-token \
        -e "SMTP_EMULATOR_SET=greylisting.delay=5; ip-allowlist.style=postfix" \
        -p 127.0.0.1::25 -p 127.0.0.1::8025 "$IMAGE" --max-recipients 50 \
        >/dev/null 2>>"$WORK/engine.log"
    i=0
    until $DOCKER logs "$STANDALONE" 2>/dev/null | grep -q "^listening api 0.0.0.0:8025"; do
        i=$((i + 1))
        if [ $i -gt 100 ] || [ "$(inspect '{{.State.Running}}' "$STANDALONE")" != true ]; then
            $DOCKER logs "$STANDALONE" 2>&1 | tail -20
            die "the container did not start listening"
        fi
        sleep 0.2
    done
    logs=$($DOCKER logs "$STANDALONE" 2>&1)
    for l in "smtp 0.0.0.0:25" "smtp 0.0.0.0:587" "smtps 0.0.0.0:465"; do
        echo "$logs" | grep -q "^listening $l\$" || die "not listening: $l"
    done
    echo "$logs" | grep -q "using the certificate in /certs" ||
        die "the mounted certificate was not used"
    # The environment became options, the arguments came last, the token
    # stayed out of the log.
    run=$(echo "$logs" | grep "^entrypoint: running ")
    for want in "--hostname mx.test" "--api-token \*\*\* " \
        "--set greylisting.delay=5 --set ip-allowlist.style=postfix" \
        "--tls-cert /certs/server.pem --tls-key /certs/server.key --tls-ca /certs/ca.pem" \
        "--max-recipients 50\$"; do
        echo "$run" | grep -q -- "$want" || die "entrypoint: no '$want' in: $run"
    done
    echo "$logs" | grep -q check-token && die "the API token is in the log"
    uid=$($DOCKER exec "$STANDALONE" sh -c 'grep ^Uid: /proc/1/status' | awk '{print $2}')
    if [ -z "$uid" ] || [ "$uid" = 0 ]; then
        die "the emulator runs as uid '$uid'"
    fi
    if [ "$ENGINE" = podman ]; then
        # podman runs health checks from systemd timers, absent here.
        podman healthcheck run "$STANDALONE" >/dev/null 2>&1 || die "health check failed"
    else
        i=0
        until [ "$(inspect '{{.State.Health.Status}}' "$STANDALONE")" = healthy ]; do
            i=$((i + 1))
            [ $i -gt 60 ] && die "the container did not become healthy"
            sleep 0.5
        done
    fi
    smtp=$($DOCKER port "$STANDALONE" 25/tcp | head -1)
    api=$($DOCKER port "$STANDALONE" 8025/tcp | head -1)
    # From the host, through the published ports: STARTTLS verified against
    # the mounted CA, a message accepted and visible in the API.
    python3 - "${smtp##*:}" "${api##*:}" "$certs/ca.pem" <<'PY' || die "the published ports did not work"
import json, smtplib, ssl, sys, urllib.request
smtp_port, api_port, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with smtplib.SMTP("localhost", smtp_port, timeout=10) as s:
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.sendmail("a@example.com", ["b@example.org"], b"Subject: from the host\r\n\r\nhi\r\n")
req = urllib.request.Request(
    "http://127.0.0.1:%s/api/v1/messages?subject=from+the+host&wait=5" % api_port,
    headers={"Authorization": "Bearer check-token"})
msgs = json.load(urllib.request.urlopen(req, timeout=10))
assert len(msgs) == 1, msgs
PY
    say "standalone: options from the environment; listening on 25, 465, 587 and 8025 as uid $uid; mounted certificate used; healthy; mail through a published port captured"
    start=$(date +%s%N)
    $DOCKER stop -t 1 "$STANDALONE" >/dev/null 2>>"$WORK/engine.log"
    ms=$((($(date +%s%N) - start) / 1000000))
    code=$(inspect '{{.State.ExitCode}}' "$STANDALONE")
    [ "$code" = 0 ] || die "exit status $code after SIGTERM (137: killed after 1 s)"
    say "standalone: stopped by SIGTERM with status 0 in $ms ms"
    $DOCKER rm "$STANDALONE" >/dev/null 2>>"$WORK/engine.log"
    STANDALONE=""
}

# The lines of service $1 in compose's output $2, without the colours and
# the other services' logs (docker-compose 1.x names the container
# SERVICE_1, compose v2 SERVICE-1).
client_lines() {
    sed 's/\x1b\[[0-9;]*m//g' "$2" | sed -n "s/^$1[_-]1 *| //p"
}

# docker/compose.yml with its example client.
check_compose() {
    compose_init
    compose config >/dev/null
    compose build client >"$WORK/compose-build.log" 2>&1 ||
        { tail -30 "$WORK/compose-build.log"; die "compose build"; }
    COMPOSE_UP=1
    say "compose up (example client against the emulator)"
    start=$(date +%s)
    set +e
    compose up -t 1 --exit-code-from client >"$WORK/up.log" 2>&1
    rc=$?
    set -e
    client_lines client "$WORK/up.log" >"$WORK/client.log"
    sed 's/^/  /' "$WORK/client.log"
    if [ $rc != 0 ]; then
        echo "the emulator's last lines:"
        sed 's/\x1b\[[0-9;]*m//g' "$WORK/up.log" | grep -v 'level=' | grep -v '^client' | tail -15
        die "compose up: exit status $rc"
    fi
    grep -q "^client: [0-9]* passed, 0 failed\$" "$WORK/client.log" ||
        die "the client did not report its checks as passed"
    emu=$(compose ps -q smtp-emulator)
    code=$(inspect '{{.State.ExitCode}}' "$emu")
    [ "$code" = 0 ] || die "the emulator exited with status $code when compose stopped it"
    say "compose: client passed, emulator stopped with status 0 ($(($(date +%s) - start)) s)"
    compose down -v -t 1 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; die "compose down"; }
    COMPOSE_UP=""
}

# The profile `replicas` of docker/compose.yml: Redis, three replicas that
# share state through it behind one name, and the replicas client. Only the
# client is named to `up`, so only it and what it depends on start: none of
# the default profile's services. Run after check_compose (compose_init).
check_replicas() {
    replicas="replica-1 replica-2 replica-3"
    compose --profile replicas config >/dev/null
    # The emulator image is built already; Redis's and the client's are
    # built when missing or changed (from cache otherwise).
    compose --profile replicas build redis replicas-client >"$WORK/compose-build.log" 2>&1 ||
        { tail -30 "$WORK/compose-build.log"; die "compose build (profile replicas)"; }
    COMPOSE_UP=1
    say "compose --profile replicas up (three replicas sharing Redis, and their client)"
    start=$(date +%s)
    set +e
    compose --profile replicas up -t 1 --exit-code-from replicas-client replicas-client \
        >"$WORK/up-replicas.log" 2>&1
    rc=$?
    set -e
    client_lines replicas-client "$WORK/up-replicas.log" >"$WORK/client.log"
    sed 's/^/  /' "$WORK/client.log"
    if [ $rc != 0 ]; then
        [ -s "$WORK/client.log" ] || tail -15 "$WORK/up-replicas.log"
        for svc in redis $replicas; do
            echo "$svc's last lines:"
            compose --profile replicas logs --no-color --tail 8 "$svc" 2>&1 | sed 's/^/  /'
        done
        die "compose up (profile replicas): exit status $rc"
    fi
    grep -q "^client: [0-9]* passed, 0 failed\$" "$WORK/client.log" ||
        die "the replicas client did not report its checks as passed"
    # Nothing of the default profile ran.
    [ -z "$(compose ps -q smtp-emulator client 2>/dev/null)" ] ||
        die "the default services were started with the replicas"
    # up stopped the client only: stop the others, then look at how.
    # shellcheck disable=SC2086
    compose --profile replicas stop -t 1 $replicas redis >"$WORK/stop.log" 2>&1 ||
        { cat "$WORK/stop.log"; die "compose stop (profile replicas)"; }
    for svc in $replicas redis; do
        code=$(inspect '{{.State.ExitCode}}' "$(compose --profile replicas ps -q "$svc")")
        [ "$code" = 0 ] || die "$svc exited with status $code when compose stopped it"
    done
    say "compose replicas: client passed, replicas and redis stopped with status 0 ($(($(date +%s) - start)) s)"
    compose --profile replicas down -v -t 1 >"$WORK/down.log" 2>&1 ||
        { cat "$WORK/down.log"; die "compose down (profile replicas)"; }
    COMPOSE_UP=""
}

case "${1:-}" in
build)
    engine_init
    build
    ;;
check)
    t0=$(date +%s)
    engine_init
    build
    check_image
    check_standalone
    check_compose
    check_replicas
    say "all passed ($(($(date +%s) - t0)) s, $ENGINE)"
    ;;
*)
    echo "usage: $0 build|check" >&2
    exit 2
    ;;
esac
