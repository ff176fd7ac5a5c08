#!/usr/bin/env bash
# Install the Debian packages a make target needs, and only those missing.
# Usage: scripts/deps.sh build|run|test|bench|fuzz|deb|test-deb ...
set -euo pipefail

pkgs_build="gcc make libc6-dev nginx nginx-dev libjansson-dev libpq-dev
            libssl-dev zlib1g-dev libpcre2-dev"
pkgs_run="postgresql python3 curl"
pkgs_test="perl libtest-base-perl libtext-diff-perl libipc-run-perl
           liburi-perl libwww-perl libhttp-message-perl
           liblist-moreutils-perl libtest-longstring-perl libjson-perl
           libio-socket-ssl-perl openssl prometheus pgbouncer"
pkgs_valgrind="valgrind"
pkgs_bench="wrk procps postgresql-contrib"
pkgs_clients="chromium fonts-dejavu-core"
# libFuzzer and the sanitizer runtimes are in libclang-rt-14-dev
pkgs_fuzz="clang libclang-rt-14-dev"
# make deb (dh-sequence-nginx is nginx-dev's), make test-deb
pkgs_deb="dpkg-dev debhelper lintian"
pkgs_test_deb="debootstrap"

want=""
for group in "$@"; do
    case "$group" in
    build)    want="$want $pkgs_build" ;;
    run)      want="$want $pkgs_build $pkgs_run" ;;
    test)     want="$want $pkgs_build $pkgs_run $pkgs_test" ;;
    valgrind) want="$want $pkgs_valgrind" ;;
    bench)    want="$want $pkgs_build $pkgs_run $pkgs_bench" ;;
    fuzz)     want="$want $pkgs_build $pkgs_fuzz" ;;
    deb)      want="$want $pkgs_build $pkgs_deb" ;;
    test-deb) want="$want $pkgs_build $pkgs_run $pkgs_test_deb" ;;
    clients)  want="$want $pkgs_build $pkgs_run $pkgs_clients"
              # Debian's Node.js/npm only when missing: a NodeSource node
              # brings its own npm, and Debian's npm would conflict with it
              command -v node >/dev/null 2>&1 || want="$want nodejs"
              command -v npm >/dev/null 2>&1 || want="$want npm" ;;
    *) echo "deps.sh: unknown group '$group'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
            | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "installing:$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# nginx's package starts a daemon where it can; we never want that one.
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
if command -v systemctl >/dev/null 2>&1 \
        && systemctl is-active --quiet nginx 2>/dev/null; then
    $sudo systemctl stop nginx || true
fi
