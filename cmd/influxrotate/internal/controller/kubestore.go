package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/retry"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// kubeStore keeps the journals in one ConfigMap, one key per credential
// (<credential>.json), and each credential's lock in a coordination.k8s.io
// Lease, so that a CronJob pod whose disk is gone resumes what a killed one
// left, and two controllers (a slow run and the next schedule, a retried Job,
// two replicas) never work on one credential at once.
//
// The ConfigMap and the Leases are expected to exist (deploy/kubernetes
// creates them; the Role grants no create). A missing one is created when
// the credentials allow it, for clusters where they do.
type kubeStore struct {
	client   kubernetes.Interface
	cfg      config.StateStore
	identity string
	log      *slog.Logger
	now      func() time.Time

	mu sync.Mutex
	// seen is each credential's journal as this process last read or wrote
	// it; a Save finding anything else there refuses to overwrite it.
	seen map[string]string
	// held are the Leases this process holds, by credential.
	held map[string]*leaseLock
}

func newKubeStore(client kubernetes.Interface, cfg config.StateStore, identity string, log *slog.Logger, now func() time.Time) *kubeStore {
	return &kubeStore{client: client, cfg: cfg, identity: identity, log: log, now: now,
		seen: map[string]string{}, held: map[string]*leaseLock{}}
}

func journalKey(name string) string { return name + ".json" }

func (s *kubeStore) where(name string) string {
	return fmt.Sprintf("ConfigMap %s/%s key %s", s.cfg.Namespace, s.cfg.ConfigMap, journalKey(name))
}

// Load implements Store.
func (s *kubeStore) Load(ctx context.Context, name string) (*state.State, error) {
	cm, err := s.client.CoreV1().ConfigMaps(s.cfg.Namespace).Get(ctx, s.cfg.ConfigMap, metav1.GetOptions{})
	raw := ""
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("journal %s: %w", s.where(name), err)
	default:
		raw = cm.Data[journalKey(name)]
	}
	s.mu.Lock()
	s.seen[name] = raw
	s.mu.Unlock()
	if raw == "" {
		return &state.State{Credential: name}, nil
	}
	var st state.State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return nil, fmt.Errorf("journal %s: %w", s.where(name), err)
	}
	if st.Credential != name {
		return nil, fmt.Errorf("journal %s belongs to credential %q", s.where(name), st.Credential)
	}
	return &st, nil
}

// Save implements Store: an update with the resourceVersion it read. A
// conflict (another credential's journal written meanwhile) is re-read and
// retried; a change of this credential's own journal since this process
// read it is never overwritten.
func (s *kubeStore) Save(ctx context.Context, st *state.State) error {
	name := st.Credential
	s.mu.Lock()
	l, seen := s.held[name], s.seen[name]
	s.mu.Unlock()
	if l == nil || l.lost() {
		return fmt.Errorf("journal %s: %w: this controller no longer holds the Lease %s", s.where(name), ErrConcurrent, s.cfg.LeaseName(name))
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	next := string(data) + "\n"
	cms := s.client.CoreV1().ConfigMaps(s.cfg.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, err := cms.Get(ctx, s.cfg.ConfigMap, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			if seen != "" {
				return fmt.Errorf("%w: the ConfigMap was deleted", ErrConcurrent)
			}
			_, err = cms.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.cfg.ConfigMap, Namespace: s.cfg.Namespace,
					Labels: map[string]string{"app.kubernetes.io/managed-by": "influxrotate"}},
				Data: map[string]string{journalKey(name): next},
			}, metav1.CreateOptions{})
			switch {
			case apierrors.IsAlreadyExists(err):
				// Created meanwhile: read it again.
				return apierrors.NewConflict(corev1.Resource("configmaps"), s.cfg.ConfigMap, err)
			case apierrors.IsForbidden(err):
				return fmt.Errorf("the ConfigMap does not exist and may not be created (apply deploy/kubernetes first): %w", err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if cur := cm.Data[journalKey(name)]; cur != seen {
			return fmt.Errorf("%w: the journal was rewritten since this controller read it", ErrConcurrent)
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[journalKey(name)] = next
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("journal %s: %w", s.where(name), err)
	}
	s.mu.Lock()
	s.seen[name] = next
	s.mu.Unlock()
	return nil
}

// Lock implements Store with the credential's Lease. A Lease held by
// another controller is watched for up to its duration: renewed, the holder
// is alive and Lock fails with state.ErrLocked; unchanged for its whole
// duration (by this process's clock, so clock skew between nodes does not
// matter), the holder is gone and its Lease is taken over. Held, the Lease
// is renewed every third of its duration until Unlock releases it.
func (s *kubeStore) Lock(ctx context.Context, name string) (Lock, error) {
	rl := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: s.cfg.LeaseName(name)},
		Client:     s.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: s.identity},
		Labels:     map[string]string{"app.kubernetes.io/managed-by": "influxrotate"},
	}
	if err := acquireLease(ctx, rl, time.Duration(s.cfg.LeaseDuration), s.now); err != nil {
		return nil, fmt.Errorf("credential %q: %w", name, err)
	}
	l := newLeaseLock(rl, time.Duration(s.cfg.LeaseDuration), s.now, s.log)
	l.onRelease = func() {
		s.mu.Lock()
		if s.held[name] == l {
			delete(s.held, name)
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.held[name] = l
	s.mu.Unlock()
	return l, nil
}

// acquireLease takes the Lease of rl for its identity (see kubeStore.Lock).
func acquireLease(ctx context.Context, rl *resourcelock.LeaseLock, duration time.Duration, now func() time.Time) error {
	var observed *resourcelock.LeaderElectionRecord
	var observedAt time.Time
	poll := min(duration/4, time.Second)
	for {
		rec, _, err := rl.Get(ctx)
		t := now()
		desired := resourcelock.LeaderElectionRecord{HolderIdentity: rl.Identity(),
			LeaseDurationSeconds: int(duration / time.Second), AcquireTime: metav1.NewTime(t), RenewTime: metav1.NewTime(t)}
		if apierrors.IsNotFound(err) {
			err = rl.Create(ctx, desired)
			switch {
			case apierrors.IsAlreadyExists(err):
				continue
			case apierrors.IsForbidden(err):
				return fmt.Errorf("Lease %s does not exist and may not be created (apply deploy/kubernetes first): %w", rl.Describe(), err)
			}
			return err
		}
		if err != nil {
			return fmt.Errorf("Lease %s: %w", rl.Describe(), err)
		}
		if rec.HolderIdentity != "" && rec.HolderIdentity != rl.Identity() {
			switch {
			case observed == nil:
				observed, observedAt = rec, t
			case renewed(observed, rec):
				return fmt.Errorf("%w (Lease %s held by %s, renewed %s)", state.ErrLocked, rl.Describe(),
					rec.HolderIdentity, rec.RenewTime.UTC().Format(time.RFC3339))
			}
			held := time.Duration(rec.LeaseDurationSeconds) * time.Second
			if wait := observedAt.Add(held).Sub(t); wait > 0 {
				timer := time.NewTimer(min(wait, poll))
				select {
				case <-ctx.Done():
					timer.Stop()
					return ctx.Err()
				case <-timer.C:
				}
				continue
			}
			// Not renewed for a whole lease duration: its holder is gone.
		}
		if rec.HolderIdentity == rl.Identity() {
			desired.AcquireTime = rec.AcquireTime
			desired.LeaderTransitions = rec.LeaderTransitions
		} else {
			desired.LeaderTransitions = rec.LeaderTransitions + 1
		}
		if err := rl.Update(ctx, desired); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("%w (Lease %s taken by another controller at the same moment)", state.ErrLocked, rl.Describe())
			}
			return fmt.Errorf("Lease %s: %w", rl.Describe(), err)
		}
		return nil
	}
}

// renewed reports whether a Lease record changed: another holder, or a
// renewal. The times are compared as times, not as the record's JSON,
// which has whole seconds only and would hide renewals within a second.
func renewed(before, now *resourcelock.LeaderElectionRecord) bool {
	return before.HolderIdentity != now.HolderIdentity || !before.RenewTime.Time.Equal(now.RenewTime.Time) ||
		before.LeaderTransitions != now.LeaderTransitions
}

// leaseLock is a held Lease, renewed in the background until released.
type leaseLock struct {
	rl        *resourcelock.LeaseLock
	duration  time.Duration
	now       func() time.Time
	log       *slog.Logger
	onRelease func()

	stop   context.CancelFunc
	done   chan struct{}
	lostCh chan struct{}
	once   sync.Once
}

func newLeaseLock(rl *resourcelock.LeaseLock, duration time.Duration, now func() time.Time, log *slog.Logger) *leaseLock {
	ctx, stop := context.WithCancel(context.Background())
	l := &leaseLock{rl: rl, duration: duration, now: now, log: log, stop: stop,
		done: make(chan struct{}), lostCh: make(chan struct{})}
	go l.renew(ctx)
	return l
}

// renew keeps the Lease until stopped. When it could not renew for a whole
// lease duration, or finds another holder, the Lease is lost: Save then
// refuses to journal and the cycle stops.
func (l *leaseLock) renew(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.duration / 3)
	defer t.Stop()
	last := l.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := l.renewOnce(ctx)
		switch {
		case err == nil:
			last = l.now()
		case errors.Is(err, state.ErrLocked) || l.now().Sub(last) >= l.duration:
			l.log.Error("lost the Lease; the cycle stops at its next journal write", "lease", l.rl.Describe(), "error", err)
			close(l.lostCh)
			return
		case ctx.Err() == nil:
			l.log.Warn("Lease renewal failed; retrying", "lease", l.rl.Describe(), "error", err)
		}
	}
}

func (l *leaseLock) renewOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, l.duration/3)
	defer cancel()
	rec, _, err := l.rl.Get(ctx)
	if err != nil {
		return err
	}
	if rec.HolderIdentity != l.rl.Identity() {
		return fmt.Errorf("%w: now held by %q", state.ErrLocked, rec.HolderIdentity)
	}
	rec.RenewTime = metav1.NewTime(l.now())
	return l.rl.Update(ctx, *rec)
}

// Lost is closed when the Lease is lost.
func (l *leaseLock) Lost() <-chan struct{} { return l.lostCh }

func (l *leaseLock) lost() bool {
	select {
	case <-l.lostCh:
		return true
	default:
		return false
	}
}

// Unlock stops the renewal and releases the Lease (holder cleared, as
// client-go's leader election does on release), so the next controller
// need not wait for it to expire.
func (l *leaseLock) Unlock() error {
	var err error
	l.once.Do(func() {
		l.stop()
		<-l.done
		if l.onRelease != nil {
			l.onRelease()
		}
		if l.lost() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.duration)
		defer cancel()
		rec, _, gerr := l.rl.Get(ctx)
		if gerr != nil {
			err = fmt.Errorf("releasing Lease %s: %w", l.rl.Describe(), gerr)
			return
		}
		if rec.HolderIdentity != l.rl.Identity() {
			return
		}
		t := metav1.NewTime(l.now())
		err = l.rl.Update(ctx, resourcelock.LeaderElectionRecord{LeaseDurationSeconds: 1,
			AcquireTime: t, RenewTime: t, LeaderTransitions: rec.LeaderTransitions})
		if err != nil {
			err = fmt.Errorf("releasing Lease %s: %w", l.rl.Describe(), err)
		}
	})
	return err
}
