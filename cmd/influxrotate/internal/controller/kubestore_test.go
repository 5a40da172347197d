package controller

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
	"github.com/influxrotate/influxrotate/testutil/k8sfake"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

func lease(t *testing.T, cs *fake.Clientset, name string) (holder string, transitions int32) {
	t.Helper()
	l, err := cs.CoordinationV1().Leases(kubeNS).Get(context.Background(), name, metav1.GetOptions{})
	must(t, err)
	if l.Spec.HolderIdentity != nil {
		holder = *l.Spec.HolderIdentity
	}
	if l.Spec.LeaseTransitions != nil {
		transitions = *l.Spec.LeaseTransitions
	}
	return holder, transitions
}

func journalData(t *testing.T, cs *fake.Clientset) map[string]string {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(kubeNS).Get(context.Background(), "influxrotate-state", metav1.GetOptions{})
	must(t, err)
	return cm.Data
}

func TestKubeStoreJournalRoundTrip(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	s := newTestKubeStore(cs, time.Second, "a")
	st, err := s.Load(ctx, "telegraf")
	must(t, err)
	if st.Credential != "telegraf" || st.Cycle != nil {
		t.Fatalf("empty journal: %+v", st)
	}
	lock, err := s.Lock(ctx, "telegraf")
	must(t, err)
	defer lock.Unlock()
	st.Cycle = &state.Cycle{RotationID: "r1", Phase: state.PhasePublish, New: state.Ref{ID: "new", Fingerprint: "sha256:0123456789ab"}}
	must(t, s.Save(ctx, st))
	data := journalData(t, cs)
	if !strings.Contains(data["telegraf.json"], `"rotation_id": "r1"`) {
		t.Fatalf("ConfigMap data %v", data)
	}
	// A fresh process (another store) reads it back.
	got, err := newTestKubeStore(cs, time.Second, "b").Load(ctx, "telegraf")
	must(t, err)
	if got.Cycle == nil || got.Cycle.Phase != state.PhasePublish || got.Cycle.New.ID != "new" {
		t.Fatalf("journal read back: %+v", got)
	}
}

// A write conflicting on the ConfigMap's resourceVersion (another
// credential's journal written meanwhile) is re-read and retried, and keeps
// the other's key.
func TestKubeStoreSaveRetriesAConflictOnAnotherKey(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	s := newTestKubeStore(cs, time.Second, "a")
	st, err := s.Load(ctx, "telegraf")
	must(t, err)
	lock, err := s.Lock(ctx, "telegraf")
	must(t, err)
	defer lock.Unlock()
	var interfered atomic.Bool
	cs.PrependReactor("update", "configmaps", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if interfered.Swap(true) {
			return false, nil, nil
		}
		// Another controller's write lands between this Get and Update.
		cm, err := cs.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), kubeNS, "influxrotate-state")
		must(t, err)
		other := cm.(*corev1.ConfigMap).DeepCopy()
		other.Data = map[string]string{"other.json": `{"credential":"other"}`}
		must(t, cs.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), other, kubeNS))
		return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), "influxrotate-state", errors.New("resourceVersion changed"))
	})
	st.Last.RotationID = "r0"
	must(t, s.Save(ctx, st))
	data := journalData(t, cs)
	if data["other.json"] == "" || !strings.Contains(data["telegraf.json"], `"r0"`) {
		t.Fatalf("after a conflict: %v", data)
	}
}

// A change of the credential's own journal since this process read it is
// never overwritten.
func TestKubeStoreNeverOverwritesAnotherControllersJournal(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	s := newTestKubeStore(cs, time.Second, "a")
	st, err := s.Load(ctx, "telegraf")
	must(t, err)
	lock, err := s.Lock(ctx, "telegraf")
	must(t, err)
	defer lock.Unlock()
	cm, err := cs.CoreV1().ConfigMaps(kubeNS).Get(ctx, "influxrotate-state", metav1.GetOptions{})
	must(t, err)
	cm.Data = map[string]string{"telegraf.json": `{"credential":"telegraf","last":{"rotation_id":"theirs"}}`}
	_, err = cs.CoreV1().ConfigMaps(kubeNS).Update(ctx, cm, metav1.UpdateOptions{})
	must(t, err)
	st.Last.RotationID = "mine"
	err = s.Save(ctx, st)
	if !errors.Is(err, ErrConcurrent) {
		t.Fatalf("save over another's journal: %v, want ErrConcurrent", err)
	}
	if got := journalData(t, cs)["telegraf.json"]; !strings.Contains(got, "theirs") {
		t.Fatalf("the other journal was overwritten: %s", got)
	}
}

func TestKubeStoreLockKeepsASecondControllerOut(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	// A long lease: a renews every second, b watches for up to three, so a
	// loaded machine does not starve a's renewal for a whole duration.
	a, b := newTestKubeStore(cs, 3*time.Second, "a"), newTestKubeStore(cs, 3*time.Second, "b")
	la, err := a.Lock(ctx, "telegraf")
	must(t, err)
	// b watches the Lease; a renews it within a third of its duration.
	if _, err := b.Lock(ctx, "telegraf"); !errors.Is(err, state.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	if holder, _ := lease(t, cs, "influxrotate-telegraf"); holder != "a" {
		t.Fatalf("holder %q, want a", holder)
	}
	must(t, la.Unlock())
	if holder, _ := lease(t, cs, "influxrotate-telegraf"); holder != "" {
		t.Fatalf("after unlock the holder is %q", holder)
	}
	// Released: taken at once.
	lb, err := b.Lock(ctx, "telegraf")
	must(t, err)
	must(t, lb.Unlock())
	// Without a lock, a store refuses to journal.
	if err := a.Save(ctx, &state.State{Credential: "telegraf"}); !errors.Is(err, ErrConcurrent) {
		t.Fatalf("save without the lease: %v", err)
	}
}

func TestKubeStoreCrashedHolderExpires(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	a, b := newTestKubeStore(cs, time.Second, "a"), newTestKubeStore(cs, time.Second, "b")
	_, err := a.Lock(ctx, "telegraf")
	must(t, err)
	_, before := lease(t, cs, "influxrotate-telegraf")
	a.crash("telegraf")
	start := time.Now()
	lb, err := b.Lock(ctx, "telegraf")
	must(t, err)
	defer lb.Unlock()
	if d := time.Since(start); d < time.Second {
		t.Errorf("took over after %s, before the lease duration", d)
	}
	holder, after := lease(t, cs, "influxrotate-telegraf")
	if holder != "b" || after != before+1 {
		t.Fatalf("holder %q transitions %d→%d", holder, before, after)
	}
}

func TestKubeStoreLostLeaseStopsJournaling(t *testing.T) {
	cs, _ := deployedCluster(t)
	ctx := context.Background()
	a := newTestKubeStore(cs, time.Second, "a")
	st, err := a.Load(ctx, "telegraf")
	must(t, err)
	la, err := a.Lock(ctx, "telegraf")
	must(t, err)
	defer la.Unlock()
	// Someone takes the Lease (a's renewals were late, a clock jumped).
	l, err := cs.CoordinationV1().Leases(kubeNS).Get(ctx, "influxrotate-telegraf", metav1.GetOptions{})
	must(t, err)
	other := "intruder"
	l.Spec.HolderIdentity = &other
	_, err = cs.CoordinationV1().Leases(kubeNS).Update(ctx, l, metav1.UpdateOptions{})
	must(t, err)
	held := la.(*leaseLock)
	wait.For(t, 10*time.Second, "the renewal notices the lost lease", held.lost)
	if err := a.Save(ctx, st); !errors.Is(err, ErrConcurrent) {
		t.Fatalf("save after losing the lease: %v", err)
	}
	if holder, _ := lease(t, cs, "influxrotate-telegraf"); holder != "intruder" {
		t.Fatalf("the lost lease was released over its new holder: %q", holder)
	}
}

// Without the objects of deploy/kubernetes, the Role grants no create: the
// error says what to do. (The enforcer would fail the test on the refused
// create, which is the point here, so it is checked and reset.)
func TestKubeStoreWithoutDeployedObjects(t *testing.T) {
	cs := fake.NewClientset()
	k8sfake.ResourceVersions(cs)
	role := deployedRole(t)
	enf := installRBAC(cs, role)
	s := newTestKubeStore(cs, time.Second, "a")
	_, err := s.Lock(context.Background(), "telegraf")
	if err == nil || !strings.Contains(err.Error(), "apply deploy/kubernetes") {
		t.Fatalf("lock without the Lease: %v", err)
	}
	if d := enf.Denied(); len(d) != 1 || d[0].Verb != "create" || d[0].Resource != "leases" {
		t.Fatalf("denied %v, want the Lease create", d)
	}
}
