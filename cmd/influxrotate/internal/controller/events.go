package controller

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/target"
	"github.com/influxrotate/influxrotate/rotation"
)

// events puts every audit record of a credential on the Secrets it
// publishes to as a Kubernetes Event (client-go's record package), so that
// `kubectl describe secret` shows the rotation history. Events carry what
// the audit record carries: IDs and fingerprints, never a token. They are
// sent in the background and are best effort, as Kubernetes Events are.
type events struct {
	targets map[string][]target.Target

	mu sync.Mutex
	// started is set by the first emit: a controller that records nothing
	// (status, a dry run) starts no sender.
	started      bool
	broadcasters []record.EventBroadcaster
	// secrets are the recorders and Secrets of each credential.
	secrets map[string][]secretEvents
}

type secretEvents struct {
	recorder record.EventRecorder
	secret   *corev1.ObjectReference
}

func newEvents(targets map[string][]target.Target) *events {
	return &events{targets: targets}
}

// start finds the kubernetes targets; one broadcaster per API client.
func (e *events) start() {
	e.started = true
	e.secrets = map[string][]secretEvents{}
	recorders := map[kubernetes.Interface]record.EventRecorder{}
	for cred, ts := range e.targets {
		for _, t := range ts {
			k, ok := t.(*target.Kubernetes)
			if !ok {
				continue
			}
			rec, ok := recorders[k.Client]
			if !ok {
				b := record.NewBroadcaster()
				b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.Client.CoreV1().Events("")})
				rec = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "influxrotate"})
				recorders[k.Client] = rec
				e.broadcasters = append(e.broadcasters, b)
			}
			e.secrets[cred] = append(e.secrets[cred], secretEvents{recorder: rec,
				secret: &corev1.ObjectReference{APIVersion: "v1", Kind: "Secret", Namespace: k.Namespace, Name: k.Secret}})
		}
	}
}

// emit records rec on the credential's Secrets.
func (e *events) emit(rec rotation.AuditRecord) {
	e.mu.Lock()
	if !e.started {
		e.start()
	}
	ss := e.secrets[rec.Credential]
	e.mu.Unlock()
	if len(ss) == 0 {
		return
	}
	typ := corev1.EventTypeNormal
	if rec.Outcome == OutcomeFailed || rec.Outcome == "partial" {
		typ = corev1.EventTypeWarning
	}
	msg := fmt.Sprintf("rotation %s: %s %s; old %s (%s), new %s (%s)", orNone(rec.RotationID), rec.Event, rec.Outcome,
		orNone(rec.OldAuthID), orNone(rec.OldFingerprint), orNone(rec.NewAuthID), orNone(rec.NewFingerprint))
	if rec.Message != "" {
		msg += ": " + rec.Message
	}
	for _, s := range ss {
		s.recorder.Event(s.secret, typ, eventReason(rec.Event), msg)
	}
}

// eventReason is the Event's reason: "Rotation" and the audit event in
// UpperCamelCase ("orphan_deleted" → "RotationOrphanDeleted").
func eventReason(event string) string {
	var b strings.Builder
	b.WriteString("Rotation")
	for _, part := range strings.Split(event, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// close stops the broadcasters.
func (e *events) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.broadcasters {
		b.Shutdown()
	}
}

// orNone is s, or "-" when empty, for messages.
func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
