#!/bin/sh
# Which Debian packages the image needs, worked out rather than listed, so
# that a library added to the Makefile reaches the image by itself:
#   docker/debs.sh build Makefile    the -dev libraries in the Makefile's
#                                    DEB_BUILD (not cmocka: unit tests only)
#   docker/debs.sh runtime BINARY    the packages holding the shared
#                                    libraries BINARY loads (ldd, dpkg -S)
set -eu
case ${1:-} in
build)
    # DEB_BUILD := ... \ (continued lines)
    awk '/^DEB_BUILD[ \t]*:=/ { on = 1; sub(/^DEB_BUILD[ \t]*:=/, "") }
         on { more = sub(/\\$/, ""); print; if (!more) exit }' "$2" |
        tr -s '[:blank:]' '\n' | grep -E '^lib.+-dev$' | grep -v -x libcmocka-dev
    ;;
runtime)
    for lib in $(ldd "$2" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
        # Packages register either the /lib or the /usr/lib path.
        { dpkg -S "$lib" || dpkg -S "$(realpath "$lib")" || dpkg -S "/usr$lib"; } 2>/dev/null |
            head -1 | cut -d: -f1
    done | grep -v -x libc6 | sort -u
    ;;
*)
    echo "usage: $0 build MAKEFILE | runtime BINARY" >&2
    exit 2
    ;;
esac
