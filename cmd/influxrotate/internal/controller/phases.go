package controller

import (
	"context"
	"slices"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// phaseStep is one phase of a cycle and the method that does its work.
//
// A phase's method does the phase's work and returns what happened; it
// never journals the next phase, appends its own completion record or calls
// its own hooks: cycleRun.loop does all three for every phase, so a new
// phase cannot forget them. Inside a phase a method may still record events
// that are not the phase's completion (an orphan deleted, a wait begun) and
// call hooks at points within it ("provision:created").
type phaseStep struct {
	phase state.Phase
	run   func(r *cycleRun, ctx context.Context) (phaseOutcome, error)
}

// phaseOutcome is what a phase did. The zero value means it completed: the
// loop moves the journal to the next phase of the cycle, appends an "ok"
// record for the phase with status and message, and calls its "after" hook.
type phaseOutcome struct {
	// status and message go into the phase's completion record.
	status  int
	message string
	// back sends the cycle back to an earlier phase instead (a new token
	// lost before it was published is provisioned again): the loop journals
	// it, and the phase is not recorded as completed.
	back state.Phase
	// rerun leaves the journal as the phase left it and runs whatever phase
	// it names: the phase must run again, or it re-read a journal that
	// someone else (a rollback) moved on.
	rerun bool
}

// refusal is a phase's error that ends the cycle with the old token still
// active: the server refused for good what the cycle needs (the operator
// token may not grant the permissions, the new token is refused on a
// bucket). The loop turns it into an abort.
type refusal struct {
	err    error
	status int
}

func (e *refusal) Error() string { return e.err.Error() }
func (e *refusal) Unwrap() error { return e.err }

// rotationCycle is the cycle of a backend whose authorizations can be set
// inactive: the old token is first deactivated, observed, and only then
// deleted, so that a rollback can still reactivate it.
//
// The cycle is a list so that it can differ by backend and grow: a backend
// with no inactive state runs noInactiveCycle, this list without
// PhaseDeactivate and PhaseObserve, chosen in New from what the backend can
// do (cycleFor). PhaseAdopt, after PhaseVerify, waits for the writers'
// adoption reports when the credential has [credential.adoption], and
// PhaseGrace then passes at once; without it, adopt passes and grace waits.
// Both cycles carry both. A phase needs only its state.Phase constant and
// its method here (wrapped in
// withNewToken when it works with the new token); the journal, the audit
// record and the hooks follow from its place in the list.
var rotationCycle = []phaseStep{
	{state.PhaseProvision, (*cycleRun).provision},
	{state.PhasePublish, withNewToken((*cycleRun).publish)},
	{state.PhaseVerify, withNewToken((*cycleRun).verify)},
	{state.PhaseAdopt, (*cycleRun).adopt},
	{state.PhaseGrace, (*cycleRun).grace},
	{state.PhaseDeactivate, (*cycleRun).deactivate},
	{state.PhaseObserve, (*cycleRun).observe},
	{state.PhaseDelete, (*cycleRun).delete},
	{state.PhaseDone, (*cycleRun).finish},
}

// noInactiveCycle is the cycle of a backend without an inactive state
// (InfluxDB 3): a token is valid until it is deleted or expires, so after
// the wait for the writers the old token is deleted at once, and nothing can
// bring it back. It is rotationCycle without the phases that need the
// inactive state, so that a phase added there is added here too.
var noInactiveCycle = slices.DeleteFunc(slices.Clone(rotationCycle), func(s phaseStep) bool {
	return s.phase == state.PhaseDeactivate || s.phase == state.PhaseObserve
})

// cycleFor is the cycle a backend with caps runs.
func cycleFor(caps backend.Capabilities) []phaseStep {
	if caps.Inactive {
		return rotationCycle
	}
	return noInactiveCycle
}

// Phases is the cycle this controller runs, in order, for status and the
// dry run.
func (c *Controller) Phases() []state.Phase {
	out := make([]state.Phase, len(c.phases))
	for i, s := range c.phases {
		out[i] = s.phase
	}
	return out
}

// withNewToken adapts a phase that works with the new token: the token is
// looked up first and, when it is lost (a crash before publish, with tokens
// the server does not show again), the cycle goes back to provision.
func withNewToken(phase func(r *cycleRun, ctx context.Context, tok string) (phaseOutcome, error)) func(*cycleRun, context.Context) (phaseOutcome, error) {
	return func(r *cycleRun, ctx context.Context) (phaseOutcome, error) {
		tok, err := r.newToken(ctx)
		if err != nil {
			return phaseOutcome{}, err
		}
		if tok == "" {
			return r.reprovision(ctx)
		}
		return phase(r, ctx, tok)
	}
}

// phaseIndex is the place of phase in the controller's cycle, -1 when the
// cycle has no such phase (a journal from another version or backend).
func (c *Controller) phaseIndex(phase state.Phase) int {
	return slices.IndexFunc(c.phases, func(s phaseStep) bool { return s.phase == phase })
}
