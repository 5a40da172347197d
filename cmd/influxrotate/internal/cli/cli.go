// Package cli is influxrotate's command line: it parses the subcommands,
// loads the configuration, drives the controller and maps outcomes to exit
// codes (0 done or nothing due, 1 failed with the old token still active,
// 2 configuration error, 3 interrupted in a state the next run resumes).
package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/controller"
	"github.com/influxrotate/influxrotate/rotation"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1
	ExitConfig      = 2
	ExitInterrupted = 3
)

// PauseEnv is the test-only hook: when set to "<phase>:<point>" (such as
// "publish:before" or "provision:created"), the process prints
// "INFLUXROTATE_TEST_PAUSED <phase>:<point>" on stderr on reaching that
// point and blocks until it is killed. Crash tests use it to kill -9 the
// controller at an exact point. Unset, it does nothing.
const PauseEnv = "INFLUXROTATE_TEST_PAUSE_AT"

// Env gives Main what it takes from the process.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// Options is applied to the controller options (tests inject a backend
	// or a Kubernetes client).
	Options func(*controller.Options)
}

const usage = `usage:
  influxrotate rotate   -config FILE [-credential NAME] [-dry-run] [-force] [-debug]
  influxrotate run      -config FILE [-debug]
  influxrotate status   -config FILE [-debug]
  influxrotate rollback -config FILE -credential NAME [-debug]
  influxrotate audit verify [-key-file KEYFILE] FILE
`

// Main runs the command line args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if len(args) == 0 {
		fmt.Fprint(env.Stderr, usage)
		return ExitConfig
	}
	switch args[0] {
	case "rotate", "run", "status", "rollback":
		return runController(ctx, args[0], args[1:], env)
	case "audit":
		return auditCmd(args[1:], env)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(env.Stderr, "influxrotate: unknown command %q\n%s", args[0], usage)
	return ExitConfig
}

func auditCmd(args []string, env Env) int {
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(env.Stderr, usage)
		return ExitConfig
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	keyFile := fs.String("key-file", "", "the audit_key_file of a keyed chain (HMAC-SHA256)")
	if err := fs.Parse(args[1:]); err != nil {
		return ExitConfig
	}
	if fs.NArg() != 1 {
		fmt.Fprint(env.Stderr, usage)
		return ExitConfig
	}
	path := fs.Arg(0)
	var opts rotation.AuditOptions
	if *keyFile != "" {
		key, err := rotation.ReadAuditKeyFile(*keyFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "influxrotate: -key-file: %v\n", err)
			return ExitConfig
		}
		opts.Key = key
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
		return ExitConfig
	}
	defer f.Close()
	sum, err := rotation.VerifyAuditLogWith(f, opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: %s: %v (after %d valid records)\n", path, err, sum.Records)
		return ExitFailed
	}
	chain := "hash chain valid (unkeyed SHA-256: detects tampering by anyone who cannot rewrite the whole file)"
	if sum.Keyed {
		chain = "keyed hash chain valid (HMAC-SHA256)"
	}
	fmt.Fprintf(env.Stdout, "%s: %d records, %s\n", path, sum.Records, chain)
	for _, r := range sum.Recoveries {
		fmt.Fprintf(env.Stdout, "%s: record %d (%s): recovered: %s\n", path, r.Seq, r.Time.Format(time.RFC3339), r.Message)
	}
	return ExitOK
}

func runController(ctx context.Context, cmd string, args []string, env Env) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "configuration file (TOML)")
	var name *string
	var dry, force *bool
	var debug = fs.Bool("debug", false, "log debug messages")
	if cmd == "rotate" || cmd == "rollback" {
		name = fs.String("credential", "", "the credential to act on (default: all)")
	}
	if cmd == "rotate" {
		dry = fs.Bool("dry-run", false, "print the plan, change nothing")
		force = fs.Bool("force", false, "rotate even when not due")
	}
	if err := fs.Parse(args); err != nil {
		return ExitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "influxrotate %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return ExitConfig
	}
	if *cfgPath == "" {
		fmt.Fprintf(env.Stderr, "influxrotate %s: -config is required\n", cmd)
		return ExitConfig
	}
	if cmd == "rollback" && *name == "" {
		fmt.Fprintf(env.Stderr, "influxrotate rollback: -credential is required\n")
		return ExitConfig
	}
	ctl, log, code := newController(*cfgPath, *debug, env)
	if ctl == nil {
		return code
	}
	defer ctl.Close()
	switch cmd {
	case "status":
		return status(ctx, ctl, env)
	case "run":
		err := ctl.Run(ctx)
		if ctx.Err() != nil {
			log.Info("stopped")
			return interruptedCode(ctx, ctl)
		}
		if err != nil {
			return ExitFailed
		}
		return ExitOK
	case "rollback":
		cr, err := ctl.Credential(*name)
		if err != nil {
			fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
			return ExitConfig
		}
		return exitCode([]controller.Result{ctl.Rollback(ctx, cr)}, env)
	}
	if *name != "" {
		if _, err := ctl.Credential(*name); err != nil {
			fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
			return ExitConfig
		}
	}
	return exitCode(ctl.RotateAll(ctx, *name, controller.RotateOptions{Force: *force, DryRun: *dry}), env)
}

// newController loads the configuration and builds the controller with
// its logger; on failure it says why on stderr and returns the exit code.
func newController(cfgPath string, debug bool, env Env) (*controller.Controller, *slog.Logger, int) {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
		return nil, nil, ExitConfig
	}
	opts := controller.Options{Config: cfg, Stdout: env.Stdout, Logger: log, Hook: pauseHook(env)}
	if env.Options != nil {
		env.Options(&opts)
	}
	ctl, err := controller.New(opts)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
		if controller.ConfigError(err) {
			return nil, nil, ExitConfig
		}
		return nil, nil, ExitFailed
	}
	return ctl, log, ExitOK
}

// interruptedCode is 3 when a stopped daemon left a cycle to resume.
func interruptedCode(ctx context.Context, ctl *controller.Controller) int {
	// ctx has ended; reading the journal must not.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sts, err := ctl.Status(ctx)
	if err != nil {
		return ExitFailed
	}
	for _, s := range sts {
		if s.Interrupted != "" {
			return ExitInterrupted
		}
	}
	return ExitOK
}

// exitCode reports each result and returns the worst code.
func exitCode(results []controller.Result, env Env) int {
	code := ExitOK
	for _, r := range results {
		c := ExitOK
		switch {
		case r.Err != nil && controller.ConfigError(r.Err):
			c = ExitConfig
		case r.Outcome == controller.OutcomeInterrupted:
			c = ExitInterrupted
		case r.Outcome == controller.OutcomeFailed:
			c = ExitFailed
		}
		if r.Err != nil {
			where := ""
			if r.Phase != "" {
				where = " at phase " + string(r.Phase)
			}
			fmt.Fprintf(env.Stderr, "influxrotate: credential %s: %s%s: %v\n", r.Credential, r.Outcome, where, r.Err)
		} else if r.Outcome == controller.OutcomeNotDue {
			fmt.Fprintf(env.Stdout, "influxrotate: credential=%s outcome=not_due\n", r.Credential)
		}
		code = worse(code, c)
	}
	return code
}

// worse orders codes: a configuration error outranks a failure, which
// outranks an interruption.
func worse(a, b int) int {
	rank := map[int]int{ExitOK: 0, ExitInterrupted: 1, ExitFailed: 2, ExitConfig: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func status(ctx context.Context, ctl *controller.Controller, env Env) int {
	sts, err := ctl.Status(ctx)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: %v\n", err)
		return ExitFailed
	}
	code := ExitOK
	for _, s := range sts {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: authorization=%s fingerprint=%s", s.Credential, cmp.Or(s.Current.ID, "-"), cmp.Or(s.Current.Fingerprint, "-"))
		if s.Age > 0 {
			fmt.Fprintf(&b, " age=%s next_due=%s", s.Age.Round(time.Second), s.NextDue.UTC().Format(time.RFC3339))
		} else {
			b.WriteString(" age=unknown next_due=now")
		}
		if s.Last.Outcome != "" {
			fmt.Fprintf(&b, " last=%s(%s at %s)", s.Last.Outcome, s.Last.RotationID, s.Last.Finished.UTC().Format(time.RFC3339))
		}
		if !s.Current.Expires.IsZero() {
			fmt.Fprintf(&b, " expires=%s", s.Current.Expires.UTC().Format(time.RFC3339))
		}
		if s.Interrupted != "" {
			fmt.Fprintf(&b, " interrupted=%s rotation=%s", s.Interrupted, s.RotationID)
		}
		phases := make([]string, len(s.Phases))
		for i, p := range s.Phases {
			phases[i] = string(p)
		}
		fmt.Fprintf(&b, " phases=%s", strings.Join(phases, ","))
		fmt.Fprintln(env.Stdout, b.String())
		if c := writers(ctx, ctl, s.Credential, env); c != ExitOK {
			code = worse(code, c)
		}
	}
	return code
}

// writers prints, for a credential with [credential.adoption], the token
// each writer reported last: who still uses the old one.
func writers(ctx context.Context, ctl *controller.Controller, name string, env Env) int {
	cr, err := ctl.Credential(name)
	if err != nil {
		return ExitConfig
	}
	ws, err := ctl.Writers(ctx, cr)
	if err != nil {
		fmt.Fprintf(env.Stderr, "influxrotate: credential %s: writers: %v\n", name, err)
		if controller.ConfigError(err) {
			return ExitConfig
		}
		return ExitFailed
	}
	if cr.Adoption != nil && len(ws) == 0 {
		fmt.Fprintf(env.Stdout, "  %s: no writer reported within %s\n", name, cr.Adoption.Lookback)
	}
	for _, w := range ws {
		fmt.Fprintf(env.Stdout, "  %s: writer=%s fingerprint=%s token=%s first_seen=%s last_report=%s rotations=%d\n",
			name, w.ClientID, w.Fingerprint, w.Token, w.FirstSeen.UTC().Format(time.RFC3339),
			w.LastReport.UTC().Format(time.RFC3339), w.Rotations)
	}
	return ExitOK
}

// pauseBound is how long a paused test run waits to be killed.
const pauseBound = 10 * time.Minute

// pauseHook returns the test-only pause of PauseEnv, or nil.
func pauseHook(env Env) func(string) {
	at := env.Getenv(PauseEnv)
	if at == "" {
		return nil
	}
	return func(point string) {
		if point != at {
			return
		}
		fmt.Fprintf(env.Stderr, "INFLUXROTATE_TEST_PAUSED %s\n", point)
		if f, ok := env.Stderr.(interface{ Sync() error }); ok {
			_ = f.Sync()
		}
		// Block until killed; a timer (not select{}) keeps the runtime's
		// deadlock detector from ending the process first. Bounded, so a
		// test that dies before it kills the process leaves no process
		// behind for ever: after the bound it exits as an interrupted run.
		time.Sleep(pauseBound)
		fmt.Fprintf(env.Stderr, "INFLUXROTATE_TEST_PAUSED %s: not killed within %s, exiting\n", point, pauseBound)
		os.Exit(ExitInterrupted)
	}
}
