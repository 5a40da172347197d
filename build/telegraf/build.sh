#!/usr/bin/env bash
# Builds a real Telegraf with outputs.influxdb_v2_rotating compiled in, by
# Telegraf's documented "fork and import" route, done at build time so that
# no Telegraf source is kept in this repository:
#
#   1. copy the pinned Telegraf module from the Go module cache into the
#      git-ignored .build/telegraf and make it writable;
#   2. add plugins/outputs/all/influxdb_v2_rotating.go, which blank-imports
#      the plugin under Telegraf's usual build-tag guard;
#   3. require this module in the copy's go.mod and replace it by this
#      checkout;
#   4. build ./cmd/telegraf with the Version ldflag and the plugin tags.
#
# Environment: TELEGRAF_VERSION (1.37.2), TELEGRAF_TAGS (the small set below;
# set it empty for Telegraf's full plugin set), OUT (bin/telegraf), GO (go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
version=${TELEGRAF_VERSION:-1.37.2}
tags=${TELEGRAF_TAGS-custom,inputs.internal,inputs.mock,outputs.influxdb_v2,outputs.influxdb_v2_rotating,outputs.file,outputs.execd}
out=${OUT:-$root/bin/telegraf}
go=${GO:-go}
work=$root/.build/telegraf
module=github.com/influxrotate/influxrotate

# The project's own GOFLAGS (-mod=...) must not apply to Telegraf's module.
export GOFLAGS=-buildvcs=false
start=$(date +%s)

echo "telegraf: fetching github.com/influxdata/telegraf@v$version"
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

cat >"$work/plugins/outputs/all/influxdb_v2_rotating.go" <<GO
//go:build !custom || outputs.influxdb_v2_rotating

package all

import _ "$module/plugins/outputs/influxdb_v2_rotating" // register plugin
GO

cd "$work"
"$go" mod edit -require="$module@v0.0.0" -replace="$module=$root"
# Checksums of the modules this project adds to Telegraf's graph.
cat "$root/go.sum" >>go.sum
# Settle go.mod/go.sum for the new requirement; uses the module cache when
# it already holds everything (GOPROXY=off works after one online build).
"$go" mod tidy -e >/dev/null 2>&1 || true

echo "telegraf: building $out (tags: ${tags:-<all plugins>})"
mkdir -p "$(dirname "$out")"
"$go" build -tags "$tags" \
	-ldflags "-s -w -X github.com/influxdata/telegraf/internal.Version=$version" \
	-o "$out" ./cmd/telegraf

"$out" --version
"$out" --usage influxdb_v2_rotating >/dev/null
echo "telegraf: done in $(($(date +%s) - start))s"
