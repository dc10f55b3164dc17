#!/usr/bin/env bash
# Pack this machine's Chromium (Debian's, as the browser tier uses it) for a GPU machine that has none, with
# the libraries it links that a machine may lack, the NSS modules it loads, a font, and Playwright's wheels,
# into parts of at most 56 MiB in ./.gpu/c1.. of the repository you stand in. Then, on the GPU machine, for
# K in 1..N (N is in .gpu/bin/NC), each with .gpu/bin and .gpu/cK present:
#   bash .gpu/bin/stage.sh chromium K
# The last part unpacks it into /tmp/chromium, installs the wheels into /tmp/site and makes /usr/bin/chromium
# (where absent) start it with the libraries the machine lacks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(git rev-parse --show-toplevel)
cd "$root"
test -x /usr/lib/chromium/chromium || bash scripts/install_chromium.sh
stage=$(mktemp -d); parts=$(mktemp -d); trap 'rm -rf "$stage" "$parts"' EXIT
mkdir -p "$stage/lib" "$stage/wheels"
cp -a /usr/lib/chromium "$stage/"
# glibc's own libraries stay the machine's (a newer glibc runs what an older one built)
ldd /usr/lib/chromium/chromium | awk '$3 ~ /^\// {print $3}' \
  | grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux-x86-64)\.so' | xargs -I{} cp -L {} "$stage/lib/"
# libnss3 loads its modules by name from its own folder (Debian's: its nss/ beside it)
cp -a /usr/lib/x86_64-linux-gnu/nss "$stage/lib/" && cp /usr/lib/x86_64-linux-gnu/nss/*.so "$stage/lib/"
mkdir -p "$stage/fonts" && cp -a /usr/share/fonts/truetype/dejavu "$stage/fonts/"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux1_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_28_x86_64 -d "$stage/wheels" playwright==1.65.2 greenlet==3.5.6
cp "$here/chromium_wrapper.sh" "$stage/"
(cd "$stage" && tar cf - . | xz -T0 -6) | split -b 56m -d -a 2 - "$parts/part."
rm -rf .gpu/c*/ && n=0
for p in "$parts"/part.*; do n=$((n+1)); mkdir -p ".gpu/c$n"; mv "$p" ".gpu/c$n/"; done
mkdir -p .gpu/bin && echo "$n" > .gpu/bin/NC && cp "$here/stage.sh" .gpu/bin/
du -sh .gpu/c* | sed 's/^/  /'
echo "chromium: $n parts; send part K with .gpu/bin and .gpu/cK: bash .gpu/bin/stage.sh chromium K"
