#!/usr/bin/env bash
# `make deb`: the Debian package libnginx-mod-http-callhq_<version>_<arch>.deb
# from debian/, with dpkg-buildpackage, then lintian on it.
#
# The build runs on a copy of the tree (the files git knows, and new ones
# it does not ignore) in build/deb/, so dpkg-buildpackage's results, which
# it writes next to the source directory, land in build/deb/ too, and
# nothing is written to the tree itself. Prints the path of the .deb.
#
#   DEB_BUILD_OPTS="nocheck"   skip the build's own test (nginx -t with the
#                              module loaded); dpkg's DEB_BUILD_OPTIONS
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

version=$(dpkg-parsechangelog -l debian/changelog -SVersion)
source=$(dpkg-parsechangelog -l debian/changelog -SSource)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
out=$top/build/deb
src=$out/$source-$version

rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
        | tar -c --null -T - | tar -x -C "$src"
else
    tar -c --exclude=./build --exclude=./.run --exclude='./t/servroot*' \
        --exclude=node_modules . | tar -x -C "$src"
fi

(
    cd "$src"
    DEB_BUILD_OPTIONS=${DEB_BUILD_OPTS:-${DEB_BUILD_OPTIONS:-}} \
        dpkg-buildpackage -us -uc --build=full >"$out/build.log" 2>&1
) || { tail -n 40 "$out/build.log" >&2; echo "deb.sh: dpkg-buildpackage failed, see $out/build.log" >&2; exit 1; }

deb=$out/${source}_${version}_${arch}.deb
changes=$out/${source}_${version}_${arch}.changes
[ -f "$deb" ] || { echo "deb.sh: $deb was not built" >&2; exit 1; }

# errors fail the build; warnings and the rest are shown
root_ok=""; [ "$(id -u)" = 0 ] && root_ok=--allow-root
lintian $root_ok --fail-on error --info "$changes" | tee "$out/lintian.log" >&2 \
    || { echo "deb.sh: lintian reports errors (build/deb/lintian.log)" >&2; exit 1; }
rm -rf "$src"
echo "$deb"
