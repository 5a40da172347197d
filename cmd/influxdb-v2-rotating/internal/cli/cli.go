// Package cli is the execd binary's command line: flags, the plugin's
// config file, -check, and the run.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/influxdata/telegraf/logger"
	"github.com/influxrotate/influxrotate/cmd/influxdb-v2-rotating/internal/server"
	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/internal/slot"
	plugin "github.com/influxrotate/influxrotate/plugins/outputs/influxdb_v2_rotating"
)

const usageHead = `influxdb-v2-rotating: the influxdb_v2_rotating Telegraf output as an outputs.execd plugin.

Usage (in telegraf.conf):

  [[outputs.execd]]
    command = ["/usr/local/bin/influxdb-v2-rotating", "-config", "/etc/telegraf/influxdb_v2_rotating.conf"]
    data_format = "influx"

The config file holds one [[outputs.influxdb_v2_rotating]] block with the
plugin's options (see sample.conf). Line protocol is read from stdin.

Flags:
`

// flags are the command line, parsed.
type flags struct {
	set                              server.Settings
	configPath                       string
	showVersion, check, debug, quiet bool
}

// Main runs the binary with args (without the program name) and returns
// its exit code. version is the build's version, "" when not set.
func Main(version string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, code, ok := parseFlags(args, stderr)
	if !ok {
		return code
	}
	if f.showVersion {
		fmt.Fprintln(stdout, "influxdb-v2-rotating", versionString(version))
		return 0
	}
	if err := f.set.Validate(); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 2
	}

	level := slog.LevelInfo
	switch {
	case f.debug:
		level = slog.LevelDebug
	case f.quiet:
		level = slog.LevelWarn
	}
	log := newLogger(stderr, level)
	// The plugin logs through Telegraf's logger; without this its early
	// messages would also pile up in memory forever.
	if err := logger.SetupLogging(&logger.Config{Debug: f.debug, Quiet: f.quiet}); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: logging: %v\n", err)
		return 1
	}

	p, err := server.LoadPlugin(f.configPath)
	if err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 1
	}
	f.set.ClientID = p.ClientID
	if err := p.Connect(); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: config %q: %v\n", f.configPath, err)
		return 1
	}

	if f.check {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		report, ok := checkReport(ctx, p)
		_ = p.Close()
		fmt.Fprintf(stdout, "config %q: options valid\n%s\n", f.configPath, report)
		if !ok {
			return 1
		}
		return 0
	}

	return serve(f.set, p, stdin, stderr, log, version)
}

// parseFlags parses args. When ok is false the binary exits with code: 0
// after -help, 2 for a bad flag or argument.
func parseFlags(args []string, stderr io.Writer) (f flags, code int, ok bool) {
	f.set = server.DefaultSettings()
	fs := flag.NewFlagSet("influxdb-v2-rotating", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configPath, "config", "", "the plugin's config `file` (one [[outputs.influxdb_v2_rotating]] block)")
	fs.BoolVar(&f.showVersion, "version", false, "print the version and exit")
	fs.BoolVar(&f.check, "check", false, "validate the config, probe the token, print a verdict and exit 0 (usable) or 1")
	fs.BoolVar(&f.debug, "debug", false, "log debug messages")
	fs.BoolVar(&f.quiet, "quiet", false, "log only warnings and errors (Telegraf shows every stderr line as an error)")
	set := &f.set
	fs.IntVar(&set.BatchSize, "batch-size", set.BatchSize, "metrics per write request (Telegraf's metric_batch_size)")
	fs.Var((*durationFlag)(&set.FlushInterval), "flush-interval", "write what is buffered at least this often: a `duration` such as 10s, or seconds (Telegraf's flush_interval)")
	fs.IntVar(&set.BufferLimit, "buffer-limit", set.BufferLimit, "metrics held in memory before stdin is no longer read (Telegraf's metric_buffer_limit)")
	fs.IntVar(&set.BufferBytes, "buffer-bytes", set.BufferBytes, "bytes of line protocol held in memory before stdin is no longer read")
	fs.StringVar(&set.SpoolDir, "spool-dir", "", "`directory` for the on-disk spool: what is read is fsynced there first and replayed at start (empty: no spool)")
	fs.Var((*durationFlag)(&set.StatsInterval), "stats-interval", "write internal_token_rotation statistics to InfluxDB this often: a `duration` or seconds (0: never)")
	fs.Var((*durationFlag)(&set.ShutdownTimeout), "shutdown-timeout", "on stdin EOF or SIGTERM, flush for at most this long: a `duration` or seconds (keep it under Telegraf's 5s)")
	fs.IntVar(&set.MaxLineBytes, "max-line-bytes", set.MaxLineBytes, "longer input lines are counted as malformed and dropped")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, 0, false
		}
		return f, 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: unexpected argument %q (see -help)\n", fs.Arg(0))
		return f, 2, false
	}
	return f, 0, true
}

// serve runs the plugin p as an execd output until stdin ends or
// SIGTERM/SIGINT, and re-reads the token source on SIGHUP.
func serve(set server.Settings, p *plugin.InfluxDB, stdin io.Reader, stderr io.Writer, log *slog.Logger, version string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hupSig := make(chan os.Signal, 1)
	signal.Notify(hupSig, syscall.SIGHUP)
	defer signal.Stop(hupSig)
	// The relay turns signals into one pending reload: SIGHUPs that arrive
	// during a reload ask for one more, not one each. signal.Stop does not
	// close hupSig, so the relay ends with serve through its context.
	hup := make(chan struct{}, 1)
	relay := lifecycle.Go(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hupSig:
				slot.Replace(hup, struct{}{})
			}
		}
	})
	defer relay.Stop()

	srv, err := server.New(set, server.PluginBackend{Plugin: p}, stdin, log)
	if err != nil {
		_ = p.Close()
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 1
	}
	log.Info("started", "version", versionString(version), "client_id", set.ClientID,
		"batch_size", set.BatchSize, "flush_interval", set.FlushInterval.String(), "spool_dir", set.SpoolDir)
	return srv.Run(ctx, hup)
}

// durationFlag reads a duration flag as Telegraf reads a duration option:
// a string such as "10s", or a number of seconds (-flush-interval 10).
type durationFlag time.Duration

func (d *durationFlag) String() string { return time.Duration(*d).String() }

func (d *durationFlag) Set(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.Abs(secs) > float64(math.MaxInt64/int64(time.Second)) {
			return fmt.Errorf("%s seconds is out of range", s)
		}
		*d = durationFlag(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("use a duration such as 10s or 1m30s, or a number of seconds")
	}
	*d = durationFlag(v)
	return nil
}

// newLogger logs to stderr without a timestamp: Telegraf prefixes each
// stderr line of the child with its own.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// versionString is version, or what the build information says.
func versionString(version string) string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		// A build from a checkout: name the commit instead.
		var rev, dirty string
		for _, kv := range info.Settings {
			switch {
			case kv.Key == "vcs.revision" && len(kv.Value) >= 12:
				rev = kv.Value[:12]
			case kv.Key == "vcs.modified" && kv.Value == "true":
				dirty = "-dirty"
			}
		}
		if rev != "" {
			return "devel-" + rev + dirty
		}
		return "devel"
	}
	return v
}
