// Command influxrotate rotates InfluxDB API tokens: it provisions a new
// authorization, publishes its token to the places writers read it from,
// verifies it, waits for the writers to adopt it, then deactivates and
// deletes the old one — crash-safe and audited. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := cli.Main(ctx, os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
