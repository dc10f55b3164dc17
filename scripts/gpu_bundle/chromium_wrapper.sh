#!/bin/sh
# /usr/bin/chromium on a GPU machine staged by stage.sh chromium: Debian's Chromium from /tmp/chromium, with
# the libraries the machine lacks (/tmp/chromium/lib) and a fontconfig that knows the bundled font.
export LD_LIBRARY_PATH=/tmp/chromium/lib:/tmp/chromium/chromium${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export FONTCONFIG_FILE=/tmp/chromium/fonts.conf
exec /tmp/chromium/chromium/chromium "$@"
