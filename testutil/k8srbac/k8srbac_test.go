package k8srbac

import (
	"context"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	manifests "github.com/influxrotate/influxrotate/deploy/kubernetes"
)

const ns = "monitoring"

func deployedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	role, err := manifests.Role()
	if err != nil {
		t.Fatal(err)
	}
	role.Namespace = ns
	return role
}

func objects() []runtime.Object {
	return []runtime.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "telegraf-influx-token", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-state", Namespace: ns}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-telegraf", Namespace: ns}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "telegraf-influx-token", Namespace: "kube-system"}},
	}
}

// The deployed Role against the requests the controller makes and those it
// must not.
func TestDeployedRole(t *testing.T) {
	cs := fake.NewClientset(objects()...)
	e := Install(&cs.Fake, deployedRole(t))
	ctx := context.Background()
	secrets := cs.CoreV1().Secrets(ns)
	leases := cs.CoordinationV1().Leases(ns)
	allowed := map[string]func() error{
		"get the rotated secret": func() error {
			_, err := secrets.Get(ctx, "telegraf-influx-token", metav1.GetOptions{})
			return err
		},
		"update the rotated secret": func() error {
			_, err := secrets.Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "telegraf-influx-token", Namespace: ns}}, metav1.UpdateOptions{})
			return err
		},
		"update the journal": func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-state", Namespace: ns}}, metav1.UpdateOptions{})
			return err
		},
		"get the credential's lease": func() error {
			_, err := leases.Get(ctx, "influxrotate-telegraf", metav1.GetOptions{})
			return err
		},
		"create an event": func() error {
			_, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e.1", Namespace: ns}}, metav1.CreateOptions{})
			return err
		},
	}
	denied := map[string]func() error{
		"get another secret": func() error {
			_, err := secrets.Get(ctx, "other", metav1.GetOptions{})
			return err
		},
		"list secrets": func() error {
			_, err := secrets.List(ctx, metav1.ListOptions{})
			return err
		},
		"list the rotated secret by field selector (the Role has no list)": func() error {
			_, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=telegraf-influx-token"})
			return err
		},
		"watch secrets": func() error {
			_, err := secrets.Watch(ctx, metav1.ListOptions{})
			return err
		},
		"delete the rotated secret": func() error {
			return secrets.Delete(ctx, "telegraf-influx-token", metav1.DeleteOptions{})
		},
		// A real cluster refuses it too: a create has no name to match resourceNames.
		"create the rotated secret": func() error {
			_, err := secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "telegraf-influx-token", Namespace: ns}}, metav1.CreateOptions{})
			return err
		},
		"create the journal": func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-state", Namespace: ns}}, metav1.CreateOptions{})
			return err
		},
		"update another lease": func() error {
			_, err := leases.Update(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "someone-else", Namespace: ns}}, metav1.UpdateOptions{})
			return err
		},
		"get the same secret in another namespace": func() error {
			_, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "telegraf-influx-token", metav1.GetOptions{})
			return err
		},
		"list namespaces (cluster-scoped)": func() error {
			_, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			return err
		},
	}
	for name, f := range allowed {
		if err := f(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, f := range denied {
		err := f()
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want 403 Forbidden", name, err)
		} else if !strings.Contains(err.Error(), "RBAC") {
			t.Errorf("%s: %v does not say why", name, err)
		}
	}
	if got := len(e.Denied()); got != len(denied) {
		t.Errorf("%d requests recorded as denied, want %d: %v", got, len(denied), e.Denied())
	}
	if got := len(e.Granted()); got != len(allowed) {
		t.Errorf("%d requests recorded as granted, want %d", got, len(allowed))
	}
}

// list and watch are restricted by name only through a metadata.name field
// selector, as in the API server.
func TestResourceNamesOnListAndWatch(t *testing.T) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: ns}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"a"}, Verbs: []string{"list", "watch"}}}}
	cs := fake.NewClientset()
	Install(&cs.Fake, role)
	cms := cs.CoreV1().ConfigMaps(ns)
	ctx := context.Background()
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=a"}); err != nil {
		t.Errorf("list with metadata.name=a: %v", err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list without a field selector: %v, want Forbidden", err)
	}
	if _, err := cms.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=b"}); !apierrors.IsForbidden(err) {
		t.Errorf("list with metadata.name=b: %v, want Forbidden", err)
	}
	w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=a"})
	if err != nil {
		t.Fatalf("watch with metadata.name=a: %v", err)
	}
	w.Stop()
	if _, err := cms.Watch(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("watch without a field selector: %v, want Forbidden", err)
	}
}

// recordingTB catches the Errorf of Enforce's cleanup.
type recordingTB struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Errorf(f string, a ...any) { r.errors = append(r.errors, f) }

func TestEnforceFailsTheTestOnADeniedRequest(t *testing.T) {
	cs := fake.NewClientset(objects()...)
	tb := &recordingTB{TB: t}
	Enforce(tb, &cs.Fake, deployedRole(t))
	if _, err := cs.CoreV1().Secrets(ns).Get(context.Background(), "telegraf-influx-token", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range tb.cleanups {
		f()
	}
	if len(tb.errors) != 0 {
		t.Fatalf("a granted request failed the test: %v", tb.errors)
	}
	if err := cs.CoreV1().Secrets(ns).Delete(context.Background(), "telegraf-influx-token", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("delete: %v, want Forbidden", err)
	}
	for _, f := range tb.cleanups {
		f()
	}
	if len(tb.errors) != 1 {
		t.Fatalf("a denied request: %d errors, want 1", len(tb.errors))
	}
}
