// Package target publishes a token to the places writers read it from and
// reads it back to confirm: a file, a Kubernetes-style secret directory, a
// key of a Kubernetes Secret, or a command. A target never logs the token.
package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/rotation"
)

// Target is one place a token is published to.
type Target interface {
	// Name describes the target for logs and audit records.
	Name() string
	// Publish makes token the target's content.
	Publish(ctx context.Context, token string) error
	// ReadBack returns the token the target holds now. It returns
	// ErrNoToken when the target holds none and ErrUnreadable when the
	// target cannot be read back (an exec target without read_command).
	ReadBack(ctx context.Context) (string, error)
}

var (
	// ErrNoToken means the target holds no token yet.
	ErrNoToken = errors.New("target holds no token")
	// ErrUnreadable means the target cannot be read back.
	ErrUnreadable = errors.New("target cannot be read back")
	// ErrRefused means the target cannot take a token as it stands (a
	// named pipe where the token file belongs, a writer that could not read
	// it): publishing again cannot help until an operator fixes it.
	ErrRefused = errors.New("target refused")
)

// Options are what targets need beyond their configuration.
type Options struct {
	Logger *slog.Logger
	// Kube, when set, replaces the client built from kubeconfig or the
	// in-cluster configuration (tests pass client-go's fake clientset).
	Kube kubernetes.Interface
	// Env is added to an exec target's environment (the fingerprint etc.
	// are set per call).
	Env []string
	// Scrubber holds every token the process holds (the operator's, the
	// old, new and provisioned ones): a hook's output and an API server's
	// error are scrubbed of all of them, not only of the token published.
	Scrubber *rotation.Scrubber
}

// New builds the target described by cfg.
func New(cfg config.Target, opts Options) (Target, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch cfg.Type {
	case config.TargetFile:
		return newFile(cfg, log)
	case config.TargetSecretDir:
		return &SecretDir{Dir: cfg.Dir, Key: cfg.Key, Mode: fileMode(cfg.Mode), Logger: log}, nil
	case config.TargetKubernetes:
		client := opts.Kube
		if client == nil {
			var err error
			client, err = KubeClient(cfg.Kubeconfig, cfg.Context)
			if err != nil {
				return nil, fmt.Errorf("kubernetes target %s/%s: %w", cfg.Namespace, cfg.Secret, err)
			}
		}
		return &Kubernetes{Client: client, Namespace: cfg.Namespace, Secret: cfg.Secret, Key: cfg.Key, Scrubber: opts.Scrubber}, nil
	case config.TargetExec:
		return &Exec{Command: cfg.Command, ReadCommand: cfg.ReadCommand, Timeout: time.Duration(cfg.ExecTimeout), Env: opts.Env, Logger: log,
			Scrubber: opts.Scrubber}, nil
	}
	return nil, fmt.Errorf("target type %q is unknown", cfg.Type)
}

// scrubberWith returns s holding token too, or, when s is nil (a target
// built without Options), a Scrubber holding token alone.
func scrubberWith(s *rotation.Scrubber, token string) *rotation.Scrubber {
	if s == nil {
		return rotation.NewScrubber(token)
	}
	s.Add(token)
	return s
}
