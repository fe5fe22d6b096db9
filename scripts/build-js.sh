#!/usr/bin/env bash
# Build the agent page's SIP library bundle, ivr/web/static/jssip.min.js, from the pinned versions in
# web/package-lock.json (JsSIP 3.13.8 bundled by esbuild 0.28.2). The bundle is committed: the server never
# downloads anything at run time. Reproducible: the same lock gives the same bytes
# (tests/unit/test_js_bundle.py rebuilds it and compares when node is installed).
#   scripts/build-js.sh            rebuild ivr/web/static/jssip.min.js
#   scripts/build-js.sh OUT        write the bundle to OUT instead (the test's check)
set -euo pipefail
cd "$(dirname "$0")/../web"
out="${1:-../ivr/web/static/jssip.min.js}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null
# --ignore-scripts: esbuild's postinstall only checks its platform binary (@esbuild/linux-x64 is a pinned
# optional dependency in the lock), nothing else runs at install
./node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --minify --platform=browser \
  --format=iife --global-name=JsSIP --target=es2020 --legal-comments=eof --charset=utf8 \
  --banner:js="/* JsSIP 3.13.8 (MIT, https://jssip.net), bundled by scripts/build-js.sh */" --define:process.env.NODE_ENV='"production"' --log-level=warning --outfile="$out"
echo "built $out ($(wc -c < "$out") bytes, sha256 $(sha256sum "$out" | cut -c1-16))"
