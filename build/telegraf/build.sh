#!/usr/bin/env bash
# Builds a real Telegraf with outputs.influxdb_v2_rotating compiled in, by
# Telegraf's documented "fork and import" route, done at build time so that
# no Telegraf source is kept in this repository:
#
#   1. pick the Go toolchain the Telegraf version asks for (its go.mod's `go`
#      and `toolchain` lines): Telegraf 1.40 needs Go 1.27, which the module
#      proxy serves, while this machine may pin GOTOOLCHAIN=local;
#   2. copy the pinned Telegraf module from the Go module cache into the
#      git-ignored .build/telegraf-<version> and make it writable;
#   3. add plugins/outputs/all/influxdb_v2_rotating.go, which blank-imports
#      the plugin under Telegraf's usual build-tag guard;
#   4. require this module in the copy's go.mod and replace it by this
#      checkout;
#   5. build ./cmd/telegraf with -mod=mod, the Version ldflag and the plugin
#      tags. `go mod tidy` is not used: it resolves the test-only modules of
#      every Telegraf package, some of which the module proxy does not serve
#      (Telegraf 1.40.1), while -mod=mod resolves only what the build needs.
#
# Environment: TELEGRAF_VERSION (1.40.1), TELEGRAF_TAGS (the small set below;
# set it empty for Telegraf's full plugin set), OUT (bin/telegraf), GO (go),
# TELEGRAF_WITH_PLUGIN (yes; "no" builds a stock Telegraf: steps 3 and 4 are
# skipped, which is how `make tools` builds the stock binary the execd tests
# run, through the same toolchain choice and module work-arounds).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=${TELEGRAF_VERSION:-1.40.1}
with_plugin=${TELEGRAF_WITH_PLUGIN:-yes}
tags=${TELEGRAF_TAGS-custom,inputs.internal,inputs.mock,outputs.influxdb_v2,outputs.influxdb_v2_rotating,outputs.file,outputs.execd}
out=${OUT:-$root/bin/telegraf}
go=${GO:-go}
work=$root/.build/telegraf-$version-$with_plugin
module=github.com/influxrotate/influxrotate

# The project's own GOFLAGS (-mod=...) must not apply to Telegraf's module.
export GOFLAGS=-buildvcs=false
start=$(date +%s)

# newer A B: succeeds when Go version A is newer than B (1.27.0 > 1.26.8).
newer() {
	[[ $1 != "$2" && $(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1) == "$1" ]]
}

echo "telegraf: resolving github.com/influxdata/telegraf@v$version"
# The .mod file downloads with any toolchain; the zip may refuse a too-old one.
gomod=$(cd / && GOTOOLCHAIN=local "$go" mod download -json "github.com/influxdata/telegraf@v$version" 2>/dev/null |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' || true)
if [[ -z $gomod || ! -f $gomod ]]; then
	echo "telegraf: the module proxy has no go.mod for Telegraf v$version" >&2
	exit 1
fi
need=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' "$gomod" | head -n 1)
want=$(sed -n 's/^toolchain go\([0-9][0-9.]*\)$/\1/p' "$gomod" | head -n 1)
[[ $need =~ ^[0-9]+\.[0-9]+$ ]] && need=$need.0
have=$(GOTOOLCHAIN=local "$go" env GOVERSION | sed 's/^go//')
if [[ -n $want ]] && newer "$want" "$need"; then need=$want; fi
if [[ -n $need ]] && newer "$need" "$have"; then
	# Fetched through the module proxy (golang.org/toolchain) on first use.
	export GOTOOLCHAIN=go$need
	echo "telegraf: v$version needs Go $need; this toolchain is $have: using GOTOOLCHAIN=$GOTOOLCHAIN"
else
	export GOTOOLCHAIN=local
fi

src=$(cd / && "$go" mod download -json "github.com/influxdata/telegraf@v$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [[ -z $src || ! -d $src ]]; then
	echo "telegraf: cannot locate the module directory of Telegraf v$version" >&2
	exit 1
fi

echo "telegraf: preparing $work"
rm -rf "$work"
mkdir -p "$work"
cp -R "$src/." "$work/"
chmod -R u+w "$work"

cd "$work"
if [[ $with_plugin == yes ]]; then
	cat >plugins/outputs/all/influxdb_v2_rotating.go <<GO
//go:build !custom || outputs.influxdb_v2_rotating

package all

import _ "$module/plugins/outputs/influxdb_v2_rotating" // register plugin
GO
	"$go" mod edit -require="$module@v0.0.0" -replace="$module=$root"
	# Checksums of the modules this project adds to Telegraf's graph; -mod=mod
	# records any further one the build needs (checked against the checksum DB).
	cat "$root/go.sum" >>go.sum
fi

echo "telegraf: building $out (tags: ${tags:-<all plugins>})"
mkdir -p "$(dirname "$out")"
# -mod=mod reads the go.mod of every module Telegraf requires, also of those
# only its other plugins import. The module proxy refuses a few of those
# here (Telegraf 1.40.1: lxc/incus, gosnowflake, ...): such a requirement is
# dropped and the build retried. A module the selected plugins do need still
# fails the build, with Go's own "no required module provides package".
log=$work/.build.log
for attempt in $(seq 1 20); do
	if "$go" build -mod=mod -tags "$tags" \
		-ldflags "-s -w -X github.com/influxdata/telegraf/internal.Version=$version" \
		-o "$out" ./cmd/telegraf >"$log" 2>&1; then
		break
	fi
	refused=$(sed -n 's/^go: \([^@ ]*\)@[^:]*: reading .*: 4[01][034] .*/\1/p' "$log" | head -n 1)
	if [[ -z $refused || $attempt == 20 ]]; then
		cat "$log" >&2
		echo "telegraf: build of v$version failed" >&2
		exit 1
	fi
	echo "telegraf: the module proxy does not serve $refused; dropping Telegraf's requirement on it"
	"$go" mod edit -droprequire="$refused"
done

"$out" --version | grep -q "Telegraf $version" || {
	echo "telegraf: $out does not report version $version" >&2
	exit 1
}
if [[ $with_plugin == yes ]]; then
	"$out" --usage influxdb_v2_rotating >/dev/null
fi
echo "telegraf: done in $(($(date +%s) - start))s"
