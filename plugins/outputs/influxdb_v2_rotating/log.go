package influxdb_v2_rotating

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/influxdata/telegraf"
)

// slogHandler hands the rotation package's records to Telegraf's logger at
// their own level. (Telegraf's plugins/common/slog adapter logs everything
// below error at debug, which would hide every rotation from a default
// configuration.) Credentials log their fingerprint through LogValue.
type slogHandler struct {
	log    telegraf.Logger
	prefix string // pre-formatted attributes of With
	group  string
}

func newSlogLogger(l telegraf.Logger) *slog.Logger { return slog.New(&slogHandler{log: l}) }

func (h *slogHandler) Enabled(_ context.Context, level slog.Level) bool {
	switch {
	case level >= slog.LevelError:
		return h.log.Level() >= telegraf.Error
	case level >= slog.LevelWarn:
		return h.log.Level() >= telegraf.Warn
	case level >= slog.LevelInfo:
		return h.log.Level() >= telegraf.Info
	}
	return h.log.Level() >= telegraf.Debug
}

func (h *slogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	msg := b.String()
	switch {
	case r.Level >= slog.LevelError:
		h.log.Error(msg)
	case r.Level >= slog.LevelWarn:
		h.log.Warn(msg)
	case r.Level >= slog.LevelInfo:
		h.log.Info(msg)
	default:
		h.log.Debug(msg)
	}
	return nil
}

func appendAttr(b *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if group != "" && key != "" {
		key = group + "." + key
	} else if key == "" {
		key = group
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			appendAttr(b, key, g)
		}
		return
	}
	fmt.Fprintf(b, " %s=%q", key, a.Value.String())
}

func (h *slogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.prefix)
	for _, a := range attrs {
		appendAttr(&b, h.group, a)
	}
	return &slogHandler{log: h.log, prefix: b.String(), group: h.group}
}

func (h *slogHandler) WithGroup(name string) slog.Handler {
	g := name
	if h.group != "" {
		g = h.group + "." + name
	}
	return &slogHandler{log: h.log, prefix: h.prefix, group: g}
}

// discardLogger is the logger of a plugin used outside the agent without one.
type discardLogger struct{}

func (discardLogger) Level() telegraf.LogLevel { return telegraf.None }
func (discardLogger) AddAttribute(string, any) {}
func (discardLogger) Errorf(string, ...any)    {}
func (discardLogger) Error(...any)             {}
func (discardLogger) Warnf(string, ...any)     {}
func (discardLogger) Warn(...any)              {}
func (discardLogger) Infof(string, ...any)     {}
func (discardLogger) Info(...any)              {}
func (discardLogger) Debugf(string, ...any)    {}
func (discardLogger) Debug(...any)             {}
func (discardLogger) Tracef(string, ...any)    {}
func (discardLogger) Trace(...any)             {}
