package controller

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// v3AdoptionBlock is the adoption gate on InfluxDB 3: Core's admin tokens
// name no database, so the reports' database is given; on Enterprise it
// comes from the database the token may write.
func v3AdoptionBlock(ed influxv2.Edition, bucket string) string {
	if bucket == "" && ed == influxv2.Core {
		bucket = "telemetry"
	}
	extra := ""
	if bucket != "" {
		extra = `bucket = "` + bucket + `"`
	}
	return adoptionBlock(time.Minute, "abort", extra)
}

// TestInfluxDB3AdoptionGate: on InfluxDB 3, which has no inactive state,
// the gate stands between publish and delete. Writers report through the
// v2-compatible write with the token they write with; the old token is
// deleted as soon as the last of them reports the new one — not before,
// and without waiting for grace — and no point is lost.
func TestInfluxDB3AdoptionGate(t *testing.T) {
	const grace = 5 * time.Second
	for _, ed := range editions {
		t.Run(string(ed), func(t *testing.T) {
			e := newEnv(t, envOptions{v3: ed, grace: grace, extra: v3AdoptionBlock(ed, "")})
			late := e.lateFile("late")
			f := e.startFleet(map[string]rotation.Source{
				"edge-1": fileSource(t, filepath.Join(e.dir, "out", "token")),
				"late":   fileSource(t, late),
			})
			wait.For(t, 10*time.Second, "every writer to report the initial token", func() bool {
				return len(e.reported()) == 2 && f.holds("late", rotation.Fingerprint(e.initial.Token))
			})

			cycles, record := e.recordCycles("delete:before", "done:before")
			var mu sync.Mutex
			var polls []time.Time     // polls that found a writer behind
			oldValidAtDelete := false // the old token still wrote when delete began
			var firstPoll sync.Once
			c := e.controller(func(p string) {
				record(p)
				switch p {
				case "adopt:poll":
					mu.Lock()
					polls = append(polls, time.Now())
					mu.Unlock()
					// The late writer's secret arrives only after the gate
					// found it on the old token.
					firstPoll.Do(func() { e.copyToken(late) })
				case "delete:before":
					oldValidAtDelete = e.writeV3(e.initial.Token) == http.StatusNoContent
				}
			})
			res := e.rotate(c, true)
			if res.Outcome != OutcomeOK {
				t.Fatalf("rotation: %+v\n%s", res, e.logs.String())
			}
			f.finish()

			atDelete, done := cycles.at(t, "delete:before"), cycles.at(t, "done:before")
			var last time.Time
			for _, w := range e.reports(c) {
				if w.Fingerprint != done.New.Fingerprint {
					t.Errorf("writer %s reports %s, want the new token %s", w.ClientID, w.Fingerprint, done.New.Fingerprint)
				}
				if w.FirstSeen.After(last) {
					last = w.FirstSeen
				}
			}
			mu.Lock()
			behind := len(polls)
			mu.Unlock()
			if behind == 0 {
				t.Error("no poll found the late writer on the old token: the gate was never tested")
			}
			if atDelete.AdoptedAt.IsZero() || atDelete.AdoptedAt.Before(last) {
				t.Errorf("delete began with the gate opened at %v, before the last writer adopted at %v", atDelete.AdoptedAt, last)
			}
			if done.DeletedAt.Before(done.AdoptedAt) {
				t.Errorf("deleted at %v, before the gate opened at %v", done.DeletedAt, done.AdoptedAt)
			}
			if !oldValidAtDelete {
				t.Error("the old token no longer wrote when delete began: something retired it before the gate")
			}
			if wait := done.DeletedAt.Sub(done.PublishedAt); wait >= grace {
				t.Errorf("publish to delete took %s: the gate waited for grace (%s)", wait, grace)
			}
			if done.Adoption == nil || !slices.Equal(done.Adoption.Adopted, []string{"edge-1", "late"}) || len(done.Adoption.Missing) != 0 {
				t.Errorf("journal adoption = %+v, want edge-1 and late adopted", done.Adoption)
			}
			if code := e.writeV3(e.initial.Token); code != http.StatusUnauthorized {
				t.Errorf("the old token writes with %d after the rotation, want 401", code)
			}
			e.checkV3EndState()
			e.checkAdoptionAudit(done.RotationID, "edge-1", "late")
			e.scanAll()
			if out := e.stdout.String(); !strings.Contains(out, "clients_adopted=2 clients_missing=0") {
				t.Errorf("summary line lacks the adoption: %q", out)
			}
		})
	}
}

// TestInfluxDB3AdoptionUnreadableBeforePublish: a database no writer has
// created (InfluxDB 3: "Database <db> not found") is a configuration error
// found before a token is made or published.
func TestInfluxDB3AdoptionUnreadableBeforePublish(t *testing.T) {
	for _, ed := range editions {
		t.Run(string(ed), func(t *testing.T) {
			e := newEnv(t, envOptions{v3: ed, extra: v3AdoptionBlock(ed, "no-such-db")})
			res := e.rotate(e.controller(nil), true)
			if res.Err == nil || !ConfigError(res.Err) || !errors.Is(res.Err, backend.ErrAdoptionAccess) || !strings.Contains(res.Err.Error(), "no-such-db") {
				t.Fatalf("result %+v, want a configuration error wrapping ErrAdoptionAccess naming the database", res)
			}
			if m := e.managedV3(); len(m) != 0 {
				t.Errorf("tokens created: %v", m)
			}
			for _, tg := range e.targets() {
				if got, err := tg.ReadBack(context.Background()); err != nil || got != e.initial.Token {
					t.Errorf("%s changed (%v)", tg.Name(), err)
				}
			}
			if st := e.loadState(); st.Cycle != nil {
				t.Errorf("a cycle was journaled: %+v", st.Cycle)
			}
		})
	}
}
