#!/usr/bin/env bash
# Fetch the Gateway API CRDs (sigs.k8s.io/gateway-api, a released v1.x) from the Go module proxy
# into the cache, and print the path of the standard-channel HTTPRoute CRD on the LAST line of
# stdout. The e2e suite applies that CRD to the hub (tests/e2e/test_traffic_route.py), so the
# operator's HTTPRoute weights are tested against the real CRD schema and a real API server.
#
# Usage: hack/gateway-api-crds.sh            download if missing; print the HTTPRoute CRD's path
#        hack/gateway-api-crds.sh --dir      print the standard-channel CRD directory instead
#
# Nothing is built and nothing lands in the repository: `go mod download` fetches the module's
# zip (no toolchain switch, no build), and the CRD files are copied to
# $WATTSCALE_CACHE/gateway-api-$GATEWAY_API_VERSION/ (default ~/.cache/wattscale/...). Idempotent.
# Knobs: GATEWAY_API_VERSION (default below), GO (default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail
HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=hack/lib.sh
source "$HACK_DIR/lib.sh"

GATEWAY_API_VERSION="${GATEWAY_API_VERSION:-1.6.3}"
MODULE="sigs.k8s.io/gateway-api"
DEST="$WATTSCALE_CACHE/gateway-api-v$GATEWAY_API_VERSION"
CRD="gateway.networking.k8s.io_httproutes.yaml"

want_dir=0
case "${1:-}" in
--dir) want_dir=1 ;;
"") ;;
*) die "usage: $0 [--dir]" ;;
esac

print_result() {
    if ((want_dir)); then echo "$DEST/standard"; else echo "$DEST/standard/$CRD"; fi
}

if [[ -s "$DEST/standard/$CRD" ]]; then
    print_result
    exit 0
fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
[[ -x "$GO" ]] || die "no Go toolchain found (looked for 'go' on PATH and /usr/local/go/bin/go)"
# Only the module's source zip is needed: never let it ask for a toolchain download.
export GOTOOLCHAIN=local
take_lock gateway-api 300
log "downloading $MODULE@v$GATEWAY_API_VERSION from the Go module proxy"
# From an empty directory, so that no go.mod around the caller is consulted.
empty="$(mktemp -d)"
info="$(cd "$empty" && GOFLAGS=-mod=mod "$GO" mod download -json "$MODULE@v$GATEWAY_API_VERSION")" ||
    die "go mod download $MODULE@v$GATEWAY_API_VERSION failed: $info"
rmdir "$empty"
src="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")"
[[ -n "$src" && -s "$src/config/crd/standard/$CRD" ]] ||
    die "no config/crd/standard/$CRD in the downloaded module (Dir: '${src:-?}')"
tmp="$(mktemp -d "$WATTSCALE_CACHE/.gateway-api.XXXXXX")"
cp -r "$src/config/crd/standard" "$src/config/crd/experimental" "$tmp/"
chmod -R u+w "$tmp" # the module cache is read-only
rm -rf "$DEST"
mv "$tmp" "$DEST"
log "Gateway API v$GATEWAY_API_VERSION CRDs in $DEST"
print_result
