// Command influxdb-v2-rotating is the influxdb_v2_rotating Telegraf output
// as an external plugin for a stock Telegraf's [[outputs.execd]]: it reads
// line protocol on stdin and writes it to InfluxDB with token rotation.
//
// Unlike Telegraf's execd shim it loses nothing it has read: a failed batch
// stays in a bounded buffer (and, with -spool-dir, on disk) and is retried;
// a full buffer stops reading stdin so that backpressure reaches Telegraf;
// only a 400/422 refusal drops a batch. It reports its own statistics to
// InfluxDB, since the parent Telegraf cannot see them.
//
// See README.md in this directory.
package main

import (
	"os"

	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(cli.Main(version, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
