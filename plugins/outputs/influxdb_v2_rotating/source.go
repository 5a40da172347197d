package influxdb_v2_rotating

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf/config"

	"github.com/influxrotate/influxrotate/internal/lifecycle"
	"github.com/influxrotate/influxrotate/internal/slot"
	"github.com/influxrotate/influxrotate/rotation"
)

// secretSource makes the token option a rotation.Source. The secret is read
// on every Read, as the stock plugin reads it on every request, so a dynamic
// secret store still works; a poll at the re-read interval reports changes
// between refusals. Its content goes through rotation.ParseToken, so a
// secret-store file ending in a newline is a valid token here.
type secretSource struct {
	secret  *config.Secret
	changes chan *rotation.Credential
	poll    *lifecycle.Goroutine

	mu   sync.Mutex
	last [sha256.Size]byte
}

func newSecretSource(secret *config.Secret, poll time.Duration) *secretSource {
	s := &secretSource{
		secret:  secret,
		changes: make(chan *rotation.Credential, 1),
	}
	s.poll = lifecycle.Go(func(ctx context.Context) { s.run(ctx, poll) })
	return s
}

func (s *secretSource) Name() string { return `option "token"` }

func (s *secretSource) Read(context.Context) (*rotation.Credential, error) {
	c, err := s.load()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.last = sha256.Sum256([]byte(c.Token()))
	s.mu.Unlock()
	return c, nil
}

func (s *secretSource) load() (*rotation.Credential, error) {
	buf, err := s.secret.Get()
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	defer buf.Destroy()
	tok, err := rotation.ParseToken(bytes.Clone(buf.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return rotation.NewCredential(tok, "", s.Name()), nil
}

func (s *secretSource) Changes() <-chan *rotation.Credential { return s.changes }

func (s *secretSource) run(ctx context.Context, poll time.Duration) {
	defer close(s.changes)
	if poll <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		c, err := s.load()
		if err != nil {
			continue
		}
		sum := sha256.Sum256([]byte(c.Token()))
		s.mu.Lock()
		changed := sum != s.last
		s.last = sum
		s.mu.Unlock()
		if !changed {
			continue
		}
		slot.Replace(s.changes, c)
	}
}

func (s *secretSource) Close() error {
	s.poll.Stop()
	return nil
}
