// Package state is the controller's journal: one JSON file per credential
// saying which authorization is current and how far an interrupted rotation
// cycle got, so that the next run resumes it instead of starting over. The
// file never holds a token, only authorization IDs and fingerprints.
//
// Saves are crash-safe (temp file, fsync, rename, fsync of the directory)
// and a per-credential flock keeps a second controller out.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/internal/fsutil"
)

// Phase is a step of the rotation cycle; the controller decides their
// order (which may differ by backend), the journal only names them.
type Phase string

// The phases of a cycle. A cycle whose phase is not PhaseDone was interrupted
// and the next run resumes it at that phase.
const (
	PhaseProvision  Phase = "provision"
	PhasePublish    Phase = "publish"
	PhaseVerify     Phase = "verify"
	PhaseAdopt      Phase = "adopt"
	PhaseGrace      Phase = "grace"
	PhaseDeactivate Phase = "deactivate"
	PhaseObserve    Phase = "observe"
	PhaseDelete     Phase = "delete"
	PhaseDone       Phase = "done"
)

// Ref names an authorization without its token.
type Ref struct {
	ID          string               `json:"id"`
	Fingerprint string               `json:"fingerprint,omitempty"`
	Since       time.Time            `json:"since,omitzero"`
	Permissions []backend.Permission `json:"permissions,omitempty"`
	// Expires is when the server stops accepting the token by itself
	// (InfluxDB 3: the expiry given at creation); zero for never.
	Expires time.Time `json:"expires,omitzero"`
}

// Cycle is a rotation in flight.
type Cycle struct {
	RotationID    string    `json:"rotation_id"`
	Phase         Phase     `json:"phase"`
	Started       time.Time `json:"started"`
	Old           Ref       `json:"old"`
	New           Ref       `json:"new,omitzero"`
	ProvisionedAt time.Time `json:"provisioned_at,omitzero"`
	PublishedAt   time.Time `json:"published_at,omitzero"`
	VerifiedAt    time.Time `json:"verified_at,omitzero"`
	// AdoptedAt is when the adopt phase let the cycle go on: every writer
	// reported the new token, or its timeout passed with on_timeout = proceed.
	AdoptedAt     time.Time `json:"adopted_at,omitzero"`
	DeactivatedAt time.Time `json:"deactivated_at,omitzero"`
	// DeletedAt is when the old token was deleted, by a cycle without a
	// deactivate phase (InfluxDB 3), where it ends the writers' grace.
	DeletedAt time.Time `json:"deleted_at,omitzero"`
	// Adoption is what the adopt phase found, for the summary and metrics.
	Adoption *Adoption `json:"adoption,omitempty"`
	// RevocationAttempts counts deactivate and delete calls, for metrics.
	RevocationAttempts int `json:"revocation_attempts"`
	// Provisions counts authorizations created in this cycle (more than one
	// after a crash with hashed tokens).
	Provisions int `json:"provisions"`
}

// Adoption is the fleet the adopt phase saw when it let the cycle go on.
type Adoption struct {
	// Adopted are the client IDs that reported the new token.
	Adopted []string `json:"adopted,omitempty"`
	// Missing are the stragglers cut off (on_timeout = proceed).
	Missing []string `json:"missing,omitempty"`
}

// Outcome is the end of the last cycle.
type Outcome struct {
	RotationID string    `json:"rotation_id"`
	Outcome    string    `json:"outcome"`
	Message    string    `json:"message,omitempty"`
	Finished   time.Time `json:"finished"`
}

// State is the journal of one credential.
type State struct {
	Credential string `json:"credential"`
	// Current is the authorization the targets hold; empty before the first
	// run found it.
	Current Ref `json:"current,omitzero"`
	// Previous is the authorization retired by the last completed cycle.
	Previous Ref `json:"previous,omitzero"`
	// Retired are authorizations to deactivate and delete at the next
	// cycle's revocation, such as an old one reactivated by a rollback whose
	// token could not be republished.
	Retired []Ref   `json:"retired,omitempty"`
	Cycle   *Cycle  `json:"cycle,omitempty"`
	Last    Outcome `json:"last,omitzero"`
}

// Interrupted reports the phase of an unfinished cycle (PhaseDone when only
// its closing record is missing), or "".
func (s *State) Interrupted() Phase {
	if s.Cycle == nil {
		return ""
	}
	return s.Cycle.Phase
}

// Store reads and writes the state files in one directory.
type Store struct{ dir string }

// NewStore returns the store in dir. The directory is created (0700) at the
// first Save or Lock, so that reading (status, a dry run) changes nothing.
func NewStore(dir string) *Store { return &Store{dir: dir} }

func (s *Store) ensureDir() error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("state_dir %q: %w", s.dir, err)
	}
	return nil
}

// Path is the state file of a credential.
func (s *Store) Path(name string) string { return filepath.Join(s.dir, name+".json") }

// Load reads a credential's state; a missing file is an empty state.
func (s *Store) Load(name string) (*State, error) {
	data, err := os.ReadFile(s.Path(name))
	if errors.Is(err, os.ErrNotExist) {
		return &State{Credential: name}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", s.Path(name), err)
	}
	if st.Credential != name {
		return nil, fmt.Errorf("state file %s belongs to credential %q", s.Path(name), st.Credential)
	}
	return &st, nil
}

// Save writes st atomically: a crash leaves either the old or the new file.
func (s *Store) Save(st *State) error {
	if err := s.ensureDir(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(s.Path(st.Credential), append(data, '\n'), 0o600)
}

// ErrLocked is returned when another controller holds a credential's lock.
var ErrLocked = errors.New("locked by another influxrotate")

// Lock is a held flock on a credential.
type Lock struct{ l *fsutil.Lock }

// Lock takes the credential's lock without waiting. The kernel releases it
// when the process dies, even by kill -9, so a crash never leaves it stale.
func (s *Store) Lock(name string) (*Lock, error) {
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	path := filepath.Join(s.dir, name+".lock")
	l, err := fsutil.TryLock(path)
	if errors.Is(err, fsutil.ErrLocked) {
		holder, _ := os.ReadFile(path)
		return nil, fmt.Errorf("credential %q: %w (pid %s)", name, ErrLocked, string(holder))
	} else if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The pid is informational: the flock, not the content, is the lock.
	_ = l.File().Truncate(0)
	_, _ = l.File().WriteAt([]byte(strconv.Itoa(os.Getpid())), 0)
	return &Lock{l: l}, nil
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil {
		return nil
	}
	return l.l.Unlock()
}
