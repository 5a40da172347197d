package influxdb_v2_rotating

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/influxdata/telegraf/config"

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
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	mu   sync.Mutex
	last [sha256.Size]byte
}

func newSecretSource(secret *config.Secret, poll time.Duration) *secretSource {
	s := &secretSource{
		secret:  secret,
		changes: make(chan *rotation.Credential, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.run(poll)
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

func (s *secretSource) run(poll time.Duration) {
	defer close(s.done)
	defer close(s.changes)
	if poll <= 0 {
		<-s.stop
		return
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
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
		select {
		case <-s.changes: // keep only the newest
		default:
		}
		s.changes <- c
	}
}

func (s *secretSource) Close() error {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	return nil
}
