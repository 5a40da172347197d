package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := NewStore(dir)
	st, err := s.Load("c")
	if err != nil || st.Credential != "c" || st.Cycle != nil {
		t.Fatalf("empty load: %+v %v", st, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Error("Load created the directory")
	}
	st.Cycle = &Cycle{RotationID: "r1", Phase: PhasePublish, Started: time.Now().UTC().Round(0),
		New: Ref{ID: "n", Fingerprint: "sha256:0123456789ab"}}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load("c")
	if err != nil || got.Interrupted() != PhasePublish || got.Cycle.New.ID != "n" {
		t.Fatalf("reload: %+v %v", got, err)
	}
	fi, _ := os.Stat(s.Path("c"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	// A state file of another credential is refused.
	if err := os.Rename(s.Path("c"), s.Path("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("d"); err == nil {
		t.Error("a state file of another credential was accepted")
	}
}

func TestLockExcludesASecondHolder(t *testing.T) {
	s := NewStore(t.TempDir())
	l, err := s.Lock("c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock("c"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	if l2, err := s.Lock("other"); err != nil {
		t.Errorf("another credential: %v", err)
	} else {
		_ = l2.Unlock()
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Unlock())
	l3, err := s.Lock("c")
	must(err)
	must(l3.Unlock())
}
