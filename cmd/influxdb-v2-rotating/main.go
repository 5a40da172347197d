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
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usageHead = `influxdb-v2-rotating: the influxdb_v2_rotating Telegraf output as an outputs.execd plugin.

Usage (in telegraf.conf):

  [[outputs.execd]]
    command = ["/usr/local/bin/influxdb-v2-rotating", "-config", "/etc/telegraf/influxdb_v2_rotating.conf"]
    data_format = "influx"

The config file holds one [[outputs.influxdb_v2_rotating]] block with the
plugin's options (see sample.conf). Line protocol is read from stdin.

Flags:
`

func realMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	set := defaultSettings()
	fs := flag.NewFlagSet("influxdb-v2-rotating", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "the plugin's config `file` (one [[outputs.influxdb_v2_rotating]] block)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	doCheck := fs.Bool("check", false, "validate the config, probe the token, print a verdict and exit 0 (usable) or 1")
	debugLog := fs.Bool("debug", false, "log debug messages")
	quiet := fs.Bool("quiet", false, "log only warnings and errors (Telegraf shows every stderr line as an error)")
	fs.IntVar(&set.batchSize, "batch-size", set.batchSize, "metrics per write request (Telegraf's metric_batch_size)")
	fs.Var((*durationFlag)(&set.flushInterval), "flush-interval", "write what is buffered at least this often: a `duration` such as 10s, or seconds (Telegraf's flush_interval)")
	fs.IntVar(&set.bufferLimit, "buffer-limit", set.bufferLimit, "metrics held in memory before stdin is no longer read (Telegraf's metric_buffer_limit)")
	fs.IntVar(&set.bufferBytes, "buffer-bytes", set.bufferBytes, "bytes of line protocol held in memory before stdin is no longer read")
	fs.StringVar(&set.spoolDir, "spool-dir", "", "`directory` for the on-disk spool: what is read is fsynced there first and replayed at start (empty: no spool)")
	fs.Var((*durationFlag)(&set.statsInterval), "stats-interval", "write internal_token_rotation statistics to InfluxDB this often: a `duration` or seconds (0: never)")
	fs.Var((*durationFlag)(&set.shutdownTimeout), "shutdown-timeout", "on stdin EOF or SIGTERM, flush for at most this long: a `duration` or seconds (keep it under Telegraf's 5s)")
	fs.IntVar(&set.maxLineBytes, "max-line-bytes", set.maxLineBytes, "longer input lines are counted as malformed and dropped")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: unexpected argument %q (see -help)\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "influxdb-v2-rotating", versionString())
		return 0
	}
	if err := validateSettings(set); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 2
	}

	level := slog.LevelInfo
	switch {
	case *debugLog:
		level = slog.LevelDebug
	case *quiet:
		level = slog.LevelWarn
	}
	log := newLogger(stderr, level)
	// The plugin logs through Telegraf's logger; without this its early
	// messages would also pile up in memory forever.
	if err := logger.SetupLogging(&logger.Config{Debug: *debugLog, Quiet: *quiet}); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: logging: %v\n", err)
		return 1
	}

	p, err := loadPlugin(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 1
	}
	set.clientID = p.ClientID
	if err := p.Connect(); err != nil {
		fmt.Fprintf(stderr, "influxdb-v2-rotating: config %q: %v\n", *configPath, err)
		return 1
	}
	be := pluginBackend{p: p}

	if *doCheck {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		verdict, ok := check(ctx, p)
		_ = p.Close()
		fmt.Fprintf(stdout, "config %q: options valid\n%s\n", *configPath, verdict)
		if !ok {
			return 1
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hupSig := make(chan os.Signal, 1)
	signal.Notify(hupSig, syscall.SIGHUP)
	defer signal.Stop(hupSig)
	hup := make(chan struct{}, 1)
	go func() {
		for range hupSig {
			select {
			case hup <- struct{}{}:
			default:
			}
		}
	}()

	srv, err := newServer(set, be, stdin, log)
	if err != nil {
		_ = p.Close()
		fmt.Fprintf(stderr, "influxdb-v2-rotating: %v\n", err)
		return 1
	}
	log.Info("started", "version", versionString(), "client_id", set.clientID,
		"batch_size", set.batchSize, "flush_interval", set.flushInterval.String(), "spool_dir", set.spoolDir)
	return srv.run(ctx, hup)
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

func validateSettings(s settings) error {
	switch {
	case s.batchSize <= 0:
		return errors.New("-batch-size: must be positive")
	case s.flushInterval <= 0:
		return errors.New("-flush-interval: must be positive")
	case s.bufferLimit < s.batchSize:
		return fmt.Errorf("-buffer-limit: must be at least -batch-size (%d)", s.batchSize)
	case s.bufferBytes <= 0:
		return errors.New("-buffer-bytes: must be positive")
	case s.statsInterval < 0:
		return errors.New("-stats-interval: must not be negative")
	case s.shutdownTimeout <= 0:
		return errors.New("-shutdown-timeout: must be positive")
	case s.maxLineBytes <= 0:
		return errors.New("-max-line-bytes: must be positive")
	case s.maxLineBytes > maxSpoolRecordBytes/2:
		// One read of stdin, a partial line and all, is one spool record.
		return fmt.Errorf("-max-line-bytes: at most %d", maxSpoolRecordBytes/2)
	}
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

func versionString() string {
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
