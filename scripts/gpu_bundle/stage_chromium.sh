#!/usr/bin/env bash
# On the GPU machine: collect part K of the Chromium bundle (make_chromium_bundle.sh); after the last part,
# unpack it into /tmp/chromium, keep only the libraries the machine lacks, install Playwright into /tmp/site
# and make /usr/bin/chromium start it.
set -euo pipefail
k=$1; n=$(cat .gpu/bin/NC); b=/tmp/chromium-bundle
mkdir -p "$b"
cp .gpu/c"$k"/part.* "$b/"
have=$(ls "$b" | wc -l)
if [ "$have" -lt "$n" ]; then echo "staged chromium part $k of $n ($have present)"; exit 0; fi
mkdir -p /tmp/chromium && cat "$b"/part.* | xz -d | tar xf - -C /tmp/chromium
for lib in /tmp/chromium/lib/*.so*; do  # the machine's own copy, where it has one, is the one to use
  if ldconfig -p | grep -q "/$(basename "$lib")\$"; then rm "$lib"; fi
done
printf '<?xml version="1.0"?>\n<fontconfig><include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>/tmp/chromium/fonts</dir><cachedir>/tmp/chromium/fontcache</cachedir></fontconfig>\n' > /tmp/chromium/fonts.conf
python3 -m pip install -q --no-index --no-deps --target /tmp/site /tmp/chromium/wheels/*.whl 2>&1 | grep -vi warning || true
[ -e /usr/bin/chromium ] || install -m 755 /tmp/chromium/chromium_wrapper.sh /usr/bin/chromium
echo "kept $(ls /tmp/chromium/lib | wc -l) libraries the machine lacks"
/usr/bin/chromium --headless --no-sandbox --disable-gpu --dump-dom 'data:text/html,<p>chromium ready</p>' 2>&1 | grep -o 'chromium ready' || echo "chromium did not start"
