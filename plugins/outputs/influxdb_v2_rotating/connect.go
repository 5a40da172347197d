package influxdb_v2_rotating

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/plugins/common/ratelimiter"

	"github.com/influxrotate/influxrotate/rotation"
)

// Connect builds one HTTP writer per URL and starts the token source and
// the Rotator. A token file that does not exist yet is not an error (unless
// strict): writes wait for it. A Connect that fails part-way releases what
// it built through Close, so the agent may call it again.
func (p *InfluxDB) Connect() (err error) {
	if !p.initialized {
		return errors.New("influxdb_v2_rotating: Connect called before Init")
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Close())
			p.writers = nil
		}
	}()
	// One Scrubber for the writers, the prober and the Rotator, which
	// registers each token with it before it is used.
	scrub := rotation.NewScrubber()
	if err := p.buildWriters(scrub); err != nil {
		return err
	}
	limiter, err := (&ratelimiter.RateLimitConfig{Limit: config.Size(p.Limit), Period: p.Period}).CreateRateLimiter()
	if err != nil {
		return fmt.Errorf("rate_limit: %w", err)
	}
	p.limiter = limiter

	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.stats = new(rotation.Stats)
	logger := newSlogLogger(p.log())
	if p.source, err = p.newSource(logger); err != nil {
		return err
	}
	var prober rotation.Prober
	if p.Probe != ProbeNone {
		hp, err := p.newProber(p.writers[0], p.probeMode())
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		prober = hp
	}
	if err := p.openAudit(); err != nil {
		return err
	}
	r, err := rotation.NewRotator(p.ctx, rotation.Config{
		Source:    p.source,
		Prober:    prober,
		Fallback:  p.Fallback,
		OnPromote: p.closeIdleConnections,
		Logger:    logger,
		Stats:     p.stats,
		Audit:     p.audit,
		ClientID:  p.ClientID,
		// The first token is used whatever a probe says, so it is probed
		// only when strict asks for the verdict at start: otherwise no
		// request precedes the first metric, as in the stock plugin, and
		// the first write (and adoption report) tells.
		TrustFirst: p.fixedToken() || !p.Strict,
		Scrubber:   scrub,
	})
	if err != nil {
		return fmt.Errorf("token rotation: %w", err)
	}
	p.rotator = r
	p.registerStats()
	switch c := r.Current(); {
	case c == nil:
		p.log().Warnf("No valid token yet from %s; writes wait for it and metrics stay buffered", p.source.Name())
	case !p.fixedToken() && !p.Strict:
		p.log().Infof("Using %s from %s, not probed at start (strict = true probes it)", c, p.source.Name())
	}
	return nil
}

// buildWriters builds one HTTP writer per URL, replacing those of an
// earlier attempt.
func (p *InfluxDB) buildWriters(scrub *rotation.Scrubber) error {
	proxy, local, err := p.networkOptions()
	if err != nil {
		return err
	}
	tlsCfg, err := p.ClientConfig.TLSConfig()
	if err != nil {
		return fmt.Errorf("tls: setting up TLS failed: %w", err)
	}
	p.writers = p.writers[:0]
	for _, u := range p.URLs {
		w, err := newHTTPWriter(writerConfig{
			url:             u,
			org:             p.Organization,
			localAddr:       local,
			proxy:           proxy,
			tls:             tlsCfg,
			timeout:         time.Duration(p.Timeout),
			pingTimeout:     time.Duration(p.PingTimeout),
			readIdleTimeout: time.Duration(p.ReadIdleTimeout),
			gzip:            p.ContentEncoding == "gzip",
			userAgent:       p.UserAgent,
			headers:         p.HTTPHeaders,
			scrub:           scrub,
		})
		if err != nil {
			return err
		}
		p.writers = append(p.writers, w)
	}
	return nil
}

// openAudit opens audit_log, when set, and says when it recovered from a
// torn record.
func (p *InfluxDB) openAudit() error {
	if p.AuditLog == "" {
		return nil
	}
	a, err := rotation.OpenAuditLogWith(p.AuditLog, rotation.AuditOptions{Key: p.auditKey})
	if err != nil {
		return fmt.Errorf("audit_log %q: %w", p.AuditLog, err)
	}
	if aside := a.Recovered(); aside != "" {
		p.log().Warnf("audit_log %q ended in a torn record (a crash in the middle of an append); its bytes were moved to %q and the recovery recorded",
			p.AuditLog, aside)
	}
	p.audit = a
	return nil
}

func (p *InfluxDB) newSource(logger *slog.Logger) (rotation.Source, error) {
	switch {
	case p.TokenFile != "":
		s, err := rotation.NewFileSource(rotation.FileSourceConfig{
			Path:     p.TokenFile,
			Debounce: time.Duration(p.TokenDebounce),
			Reread:   time.Duration(p.TokenRereadInterval),
			Logger:   logger,
			Stats:    p.stats,
		})
		if err != nil {
			return nil, fmt.Errorf("token_file: %w", err)
		}
		return s, nil
	case p.TokenEnv != "":
		s, err := rotation.NewEnvSource(p.TokenEnv)
		if err != nil {
			return nil, fmt.Errorf("token_env: %w", err)
		}
		return s, nil
	default:
		return newSecretSource(&p.Token, time.Duration(p.TokenRereadInterval)), nil
	}
}

// closeIdleConnections makes the next request of every writer open a new
// connection after a promotion, so no keep-alive connection that a proxy
// may have tied to the old token is reused.
func (p *InfluxDB) closeIdleConnections() {
	for _, w := range p.writers {
		w.close()
	}
}

func (p *InfluxDB) closeSource() {
	if p.source != nil {
		_ = p.source.Close()
	}
}

// Close stops the Rotator and the token source, closes the audit log and
// the idle connections, and publishes the final statistics.
func (p *InfluxDB) Close() error {
	var errs []error
	if p.rotator != nil {
		errs = append(errs, p.rotator.Close())
	}
	p.closeSource()
	if p.audit != nil {
		errs = append(errs, p.audit.Close())
	}
	if p.cancel != nil {
		p.cancel()
	}
	for _, w := range p.writers {
		w.close()
	}
	p.updateStats()
	return errors.Join(errs...)
}
