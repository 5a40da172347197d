package k8sfake

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestStaleUpdateConflicts(t *testing.T) {
	cs := fake.NewClientset()
	ResourceVersions(cs)
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("ns")
	created, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, metav1.CreateOptions{})
	if err != nil || created.ResourceVersion == "" {
		t.Fatalf("create: %+v %v", created, err)
	}
	first, err := cms.Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second := first.DeepCopy()
	first.Data = map[string]string{"k": "1"}
	updated, err := cms.Update(ctx, first, metav1.UpdateOptions{})
	if err != nil || updated.ResourceVersion == first.ResourceVersion {
		t.Fatalf("update: %+v %v", updated, err)
	}
	second.Data = map[string]string{"k": "2"}
	if _, err := cms.Update(ctx, second, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale update: %v, want Conflict", err)
	}
	got, _ := cms.Get(ctx, "a", metav1.GetOptions{})
	if got.Data["k"] != "1" {
		t.Fatalf("the stale update overwrote: %v", got.Data)
	}
	// Without a resourceVersion an update is unconditional, as in the API.
	second.ResourceVersion = ""
	if _, err := cms.Update(ctx, second, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("unconditional update: %v", err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}}, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
}

// Two writers that read an object given to NewClientset (no
// resourceVersion) cannot both update it.
func TestSeededObjectsGetAResourceVersion(t *testing.T) {
	cs := fake.NewClientset(&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "ns"}})
	ResourceVersions(cs)
	ctx := context.Background()
	cms := cs.CoreV1().ConfigMaps("ns")
	first, err := cms.Get(ctx, "a", metav1.GetOptions{})
	if err != nil || first.ResourceVersion == "" {
		t.Fatalf("get: %+v %v", first, err)
	}
	second, err := cms.Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, first, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, second, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("second writer: %v, want Conflict", err)
	}
}
