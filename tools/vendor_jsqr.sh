#!/usr/bin/env bash
# Install or refresh the vendored QR decoder the scan page falls back to when the browser has
# no BarcodeDetector: jsQR from the npm registry, minified, served from the app (no CDN).
#
# Writes src/bankwallet/web/static/vendor/jsQR.min.js (with a banner naming the package,
# version, licence and how it was made: Apache-2.0 §4(b) asks modified files to say so) and
# jsQR.LICENSE beside it. Needs node and npm; reaches only the npm registry; installs nothing
# into the repository. Usage: tools/vendor_jsqr.sh   (then check the printed hashes, commit)
#
# To move to a new version: change JSQR_VERSION (read its licence first), run, and test
# tests/e2e/test_scan_camera.py. The service worker's cache name follows the file's hash.
set -euo pipefail

JSQR_VERSION="1.4.0"     # licence Apache-2.0
TERSER_VERSION="5.44.1"  # pinned: the same input and terser give the same bytes
# Last run (1.4.0, terser 5.44.1): npm integrity sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT
# 1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A==; sha256(jsQR.min.js) e67c3aeb06c7f6ecf50c4b7696
# 5e1a5a7e561954e93651931240deb101d46fd1; sha256(jsQR.LICENSE) c6596eb7be8581c18be736c846fb9173b6
# 9eccf6ef94c5135893ec56bd92ba08.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR_DIR="$ROOT/src/bankwallet/web/static/vendor"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
npm pack --silent "jsqr@$JSQR_VERSION" >/dev/null
tar xzf "jsqr-$JSQR_VERSION.tgz"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "terser@$TERSER_VERSION" >/dev/null

BANNER="/*! jsQR $JSQR_VERSION (npm: jsqr, https://github.com/cozmo/jsQR), Apache-2.0 (see"
BANNER+=" jsQR.LICENSE). Minified from dist/jsQR.js with terser $TERSER_VERSION by"
BANNER+=" tools/vendor_jsqr.sh; otherwise unchanged. */"
npx --no-install terser package/dist/jsQR.js --compress --mangle --comments false \
  --output jsQR.min.js
{ echo "$BANNER"; cat jsQR.min.js; echo; } >"$VENDOR_DIR/jsQR.min.js"
cp package/LICENSE "$VENDOR_DIR/jsQR.LICENSE"

echo "npm integrity: $(npm view "jsqr@$JSQR_VERSION" dist.integrity 2>/dev/null)"
sha256sum "$VENDOR_DIR/jsQR.min.js" "$VENDOR_DIR/jsQR.LICENSE"
