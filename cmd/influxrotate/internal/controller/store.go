package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
)

// Store keeps each credential's journal and its lock. Two implementations:
// files in state_dir under flock (dirStore) and a ConfigMap and Leases in
// the Kubernetes API (kubeStore). A journal holds IDs and fingerprints,
// never a token.
type Store interface {
	// Load reads a credential's journal; none yet is an empty state.
	Load(ctx context.Context, name string) (*state.State, error)
	// Save journals st. A store shared between controllers never overwrites
	// a journal another controller wrote since this one read it: it returns
	// an error wrapping ErrConcurrent instead.
	Save(ctx context.Context, st *state.State) error
	// Lock takes the credential's lock, or fails with an error wrapping
	// state.ErrLocked while another controller holds it.
	Lock(ctx context.Context, name string) (Lock, error)
}

// Lock is a held credential lock.
type Lock interface {
	Unlock() error
}

// ErrConcurrent means another controller changed what this one was about
// to act on: its journal, or the token a target holds. The cycle stops
// (exit 1) rather than overwrite or revoke the other's work.
var ErrConcurrent = errors.New("changed by another controller")

// newStore builds the store the configuration selects. kube, when set,
// replaces the client built from [state] kubeconfig or the in-cluster
// service account.
func newStore(cfg *config.Config, kube kubernetes.Interface, log *slog.Logger, now func() time.Time) (Store, error) {
	if cfg.State.Type != config.StateKubernetes {
		return dirStore{state.NewStore(cfg.StateDir)}, nil
	}
	if kube == nil {
		var err error
		if kube, err = target.KubeClient(cfg.State.Kubeconfig, cfg.State.Context); err != nil {
			return nil, &config.Error{Err: fmt.Errorf("[state] type kubernetes: %w", err)}
		}
	}
	return newKubeStore(kube, cfg.State, holderIdentity(cfg.ClientID), log, now), nil
}

// holderIdentity names this process in Leases: the client_id (the pod name
// in deploy/kubernetes) and a random part, as two processes may share a
// client_id (a Job's retry and its first pod, two runs on one host).
func holderIdentity(clientID string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return clientID + "/" + hex.EncodeToString(b)
}

// dirStore is the journal in state_dir: one file per credential, written
// atomically, and a flock per credential.
type dirStore struct{ s *state.Store }

func (d dirStore) Load(_ context.Context, name string) (*state.State, error) { return d.s.Load(name) }
func (d dirStore) Save(_ context.Context, st *state.State) error             { return d.s.Save(st) }
func (d dirStore) Lock(_ context.Context, name string) (Lock, error) {
	l, err := d.s.Lock(name)
	if err != nil {
		return nil, err
	}
	return l, nil
}
