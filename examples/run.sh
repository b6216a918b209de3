#!/bin/sh
# Run one client example against build/smtp-emulator:
#   examples/run.sh python|java|node
# As root, the example's toolchain is installed first (Debian packages
# through tools/deps.sh; nodemailer through npm). Otherwise an example whose
# toolchain is missing is skipped, with a line saying so.
set -eu
cd "$(dirname "$0")/.."
export SMTP_EMULATOR_BIN="$PWD/build/smtp-emulator"
lang=${1:?usage: examples/run.sh python|java|node}

skip() {
    echo "examples: $lang skipped: $*"
    exit 0
}

# Debian packages: installed as root, else required.
need_debs() {
    if [ "$(id -u)" = 0 ]; then
        ./tools/deps.sh "$@"
        return
    fi
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed" || skip "package $p is not installed"
    done
}

case $lang in
python)
    need_debs python3 python3-pytest
    PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -p no:cacheprovider \
        examples/python
    ;;
java)
    need_debs default-jdk-headless libjakarta-mail-java junit5
    # Debian's jars; jakarta-mail.jar's manifest names the activation jar
    # by a file name that does not exist, so it is listed here.
    cp=""
    for j in jakarta-mail jakarta-activation junit-jupiter-api apiguardian-api opentest4j; do
        [ -f "/usr/share/java/$j.jar" ] || skip "/usr/share/java/$j.jar is missing"
        cp="$cp${cp:+:}/usr/share/java/$j.jar"
    done
    out=build/examples/java
    rm -rf "$out"
    mkdir -p "$out"
    javac -Xlint:all,-path -Werror -d "$out" -cp "$cp" examples/java/src/example/*.java
    java -jar /usr/share/java/junit-platform-console-standalone.jar \
        --disable-banner --disable-ansi-colors --details=tree --fail-if-no-tests \
        --class-path "$out:$cp" --select-package example
    ;;
node)
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        need_debs nodejs npm
    fi
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || skip "nodemailer needs Node.js 20 or later, this is $(node --version)"
    cd examples/node
    npm ci --no-audit --no-fund --loglevel=error
    npm test
    ;;
*)
    echo "examples/run.sh: unknown example '$lang'" >&2
    exit 2
    ;;
esac
