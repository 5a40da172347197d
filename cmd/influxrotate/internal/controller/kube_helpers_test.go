package controller

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	manifests "github.com/influxrotate/influxrotate/deploy/kubernetes"
	"github.com/influxrotate/influxrotate/testutil/k8sfake"
	"github.com/influxrotate/influxrotate/testutil/k8srbac"
	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// kubeNS is the namespace the Kubernetes tests deploy to.
const kubeNS = "monitoring"

// deployedCluster is a fake API server holding what `kubectl apply -k
// deploy/kubernetes` creates in kubeNS, plus objects, with the API
// server's optimistic concurrency (testutil/k8sfake), behind a reactor that
// enforces the Role of deploy/kubernetes: any request the Role does not
// grant fails the test.
func deployedCluster(t *testing.T, objects ...runtime.Object) (*fake.Clientset, *k8srbac.Enforcer) {
	t.Helper()
	set, err := manifests.Base()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range set.All() {
		switch x := o.(type) {
		case *corev1.ConfigMap:
			x = x.DeepCopy()
			x.Namespace = kubeNS
			objects = append(objects, x)
		case *coordinationv1.Lease:
			x = x.DeepCopy()
			x.Namespace = kubeNS
			objects = append(objects, x)
		}
	}
	cs := fake.NewClientset(objects...)
	// Optimistic concurrency first, RBAC in front of it: a forbidden
	// request never reaches the store.
	k8sfake.ResourceVersions(cs)
	return cs, k8srbac.Enforce(t, &cs.Fake, deployedRole(t))
}

// testStateConfig is the kubernetes store of deploy/kubernetes with a
// short lease.
func testStateConfig(lease time.Duration) config.StateStore {
	return config.StateStore{Type: config.StateKubernetes, Namespace: kubeNS, ConfigMap: config.DefaultStateConfigMap,
		LeasePrefix: config.DefaultLeasePrefix, LeaseDuration: config.Duration(lease)}
}

func newTestKubeStore(cs *fake.Clientset, lease time.Duration, identity string) *kubeStore {
	return newKubeStore(cs, testStateConfig(lease), identity, slog.New(slog.DiscardHandler), time.Now)
}

// crash makes the held Lease of name behave as if its process were killed:
// renewals stop and nothing releases it.
func (s *kubeStore) crash(name string) {
	s.mu.Lock()
	l := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.stop()
		<-l.done
	})
}

func deployedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	role, err := manifests.Role()
	if err != nil {
		t.Fatal(err)
	}
	role.Namespace = kubeNS
	return role
}

// installRBAC enforces role without failing the test on a denial, for
// tests that expect one.
func installRBAC(cs *fake.Clientset, role *rbacv1.Role) *k8srbac.Enforcer {
	return k8srbac.Install(&cs.Fake, role)
}

// kubeObjects returns the stored objects of a resource in kubeNS, read from
// the tracker (not through the API: the Role grants the test no list).
func kubeObjects(t *testing.T, cs *fake.Clientset, gvr schema.GroupVersionResource) []runtime.Object {
	t.Helper()
	kinds := map[string]string{"configmaps": "ConfigMap", "events": "Event", "leases": "Lease", "secrets": "Secret"}
	list, err := cs.Tracker().List(gvr, gvr.GroupVersion().WithKind(kinds[gvr.Resource]), kubeNS)
	must(t, err)
	items, err := meta.ExtractList(list)
	must(t, err)
	return items
}

// checkNoLeakInKubernetes scans what the controller left in the API server
// (the journal ConfigMap, the Leases, the Events) for every token.
func (e *testEnv) checkNoLeakInKubernetes(tokens []string) {
	e.t.Helper()
	var scan secscan.Scanner
	scan.Add(tokens...)
	for _, gvr := range []schema.GroupVersionResource{
		corev1.SchemeGroupVersion.WithResource("configmaps"),
		corev1.SchemeGroupVersion.WithResource("events"),
		coordinationv1.SchemeGroupVersion.WithResource("leases"),
	} {
		for _, o := range kubeObjects(e.t, e.kube, gvr) {
			data, err := json.Marshal(o)
			must(e.t, err)
			scan.Check(e.t, gvr.Resource, data)
		}
	}
}

// kubeEvents returns the Events on the rotated Secret.
func (e *testEnv) kubeEvents() []*corev1.Event {
	var out []*corev1.Event
	for _, o := range kubeObjects(e.t, e.kube, corev1.SchemeGroupVersion.WithResource("events")) {
		ev := o.(*corev1.Event)
		if ev.InvolvedObject.Kind == "Secret" && ev.InvolvedObject.Name == "telegraf-influx-token" {
			out = append(out, ev)
		}
	}
	return out
}

// auditLog is the audit file's content.
func (e *testEnv) auditLog() string {
	data, err := os.ReadFile(filepath.Join(e.dir, "audit", "audit.jsonl"))
	must(e.t, err)
	return string(data)
}
