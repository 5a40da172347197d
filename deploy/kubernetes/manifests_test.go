package manifests

import (
	"strings"
	"testing"
	"testing/fstest"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func kinds(objs []runtime.Object) map[string]int {
	out := map[string]int{}
	for _, o := range objs {
		out[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return out
}

func TestBaseDecodesStrictly(t *testing.T) {
	s, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(s.All())
	want := map[string]int{"ServiceAccount": 1, "Role": 1, "RoleBinding": 1, "ConfigMap": 2, "Lease": 2, "CronJob": 1, "Deployment": 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%d %s, want %d (all: %v)", got[k], k, n, got)
		}
	}
	if s.Kustomization.Namespace == "" {
		t.Error("the kustomization sets no namespace")
	}
	for _, o := range s.All() {
		// kustomize sets the namespace; a hard-coded one would escape it.
		if m, ok := o.(interface{ GetNamespace() string }); ok && m.GetNamespace() != "" {
			t.Errorf("%T has namespace %q: leave it to the kustomization", o, m.GetNamespace())
		}
	}
}

func TestExamplesDecodeStrictly(t *testing.T) {
	s, err := Examples()
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(s.All())
	if got["Deployment"] != 2 || got["ConfigMap"] != 2 {
		t.Fatalf("examples: %v, want 2 Deployments and 2 ConfigMaps", got)
	}
	for _, o := range s.All() {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		mounted := false
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "telegraf-influx-token" {
				mounted = true
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, m := range c.VolumeMounts {
				// The kubelet never updates a subPath mount: the new token
				// would not arrive.
				if m.SubPath != "" {
					t.Errorf("%s: %s mounts %s with subPath", d.Name, c.Name, m.Name)
				}
			}
		}
		if !mounted {
			t.Errorf("%s does not mount the Secret telegraf-influx-token", d.Name)
		}
	}
	for _, o := range s.All() {
		cm, ok := o.(*corev1.ConfigMap)
		if ok && !strings.Contains(cm.Data["telegraf.conf"]+cm.Data["influxdb_v2_rotating.conf"], "token_file = \"/run/secrets/influx/token\"") {
			t.Errorf("ConfigMap %s: no outputs.influxdb_v2_rotating reading the Secret mount", cm.Name)
		}
	}
}

func TestRunAndRotateWorkloads(t *testing.T) {
	s, err := Base()
	if err != nil {
		t.Fatal(err)
	}
	var cj *batchv1.CronJob
	var dep *appsv1.Deployment
	var leases []string
	for _, o := range s.All() {
		switch x := o.(type) {
		case *batchv1.CronJob:
			cj = x
		case *appsv1.Deployment:
			dep = x
		case *coordinationv1.Lease:
			leases = append(leases, x.Name)
		}
	}
	if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob concurrencyPolicy = %q, want Forbid", cj.Spec.ConcurrencyPolicy)
	}
	if args := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args; len(args) == 0 || args[0] != "rotate" {
		t.Errorf("CronJob args %v, want rotate", args)
	}
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas = %v, want 2", dep.Spec.Replicas)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Errorf("Deployment args %v, want run", c.Args)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	}
	for _, spec := range []corev1.PodSpec{cj.Spec.JobTemplate.Spec.Template.Spec, dep.Spec.Template.Spec} {
		if spec.ServiceAccountName != "influxrotate" {
			t.Errorf("serviceAccountName %q, want influxrotate", spec.ServiceAccountName)
		}
	}
	if strings.Join(leases, ",") != "influxrotate-telegraf,influxrotate-leader" {
		t.Errorf("leases %v", leases)
	}
}

// Every rule but events names its objects, and nothing beyond the
// controller's needs is granted.
func TestRoleIsNamespacedAndNamesItsObjects(t *testing.T) {
	role, err := Role()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v == "*" || v == "list" || v == "watch" || v == "delete" || v == "deletecollection" {
				t.Errorf("rule %v grants %q", r, v)
			}
		}
		for _, res := range r.Resources {
			if res == "*" {
				t.Errorf("rule %v grants every resource", r)
			}
			if res != "events" && len(r.ResourceNames) == 0 {
				t.Errorf("rule %v on %s has no resourceNames", r, res)
			}
			if res == "events" && strings.Join(r.Verbs, ",") != "create,patch" {
				t.Errorf("events rule %v", r)
			}
		}
	}
	if role.GetObjectKind().GroupVersionKind() != (schema.GroupVersionKind{Group: rbacv1.GroupName, Version: "v1", Kind: "Role"}) {
		t.Errorf("role kind %v", role.GetObjectKind().GroupVersionKind())
	}
}

func TestStrictDecodeRefusesTypos(t *testing.T) {
	cases := map[string]string{
		"unknown field": `apiVersion: batch/v1
kind: CronJob
metadata:
  name: x
spec:
  schedule: "* * * * *"
  concurencyPolicy: Forbid
  jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: b}]}}}}
`,
		"unknown nested field": `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: x
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceName: ["only-this-one"]
    verbs: ["get"]
`,
		"duplicate field": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: x
  name: y
`,
		"unknown kind": `apiVersion: v1
kind: Secrett
metadata:
  name: x
`,
		"wrong type": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  replicas: "two"
`,
	}
	for name, doc := range cases {
		if _, err := Decode([]byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: ok\n---\n" + doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else if !strings.Contains(err.Error(), "document 2") {
			t.Errorf("%s: error %q does not name the document", name, err)
		} else if strings.Contains(name, "field") && name != "duplicate field" && !strings.Contains(err.Error(), "strict decoding error: unknown field") {
			t.Errorf("%s: error %q is not the strict decoder's", name, err)
		}
	}
}

func TestKustomizationIsStrictAndComplete(t *testing.T) {
	fsys := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [sa.yaml]\n")},
		"k/sa.yaml":            {Data: []byte("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n")},
	}
	if _, err := Load(fsys, "k"); err != nil {
		t.Fatalf("valid kustomization: %v", err)
	}
	typo := fstest.MapFS{
		"k/kustomization.yaml": {Data: []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [sa.yaml]\n")},
		"k/sa.yaml":            fsys["k/sa.yaml"],
	}
	if _, err := Load(typo, "k"); err == nil || !strings.Contains(err.Error(), "resource") {
		t.Errorf("kustomization with a misspelt key: %v", err)
	}
	unlisted := fstest.MapFS{
		"k/kustomization.yaml": fsys["k/kustomization.yaml"],
		"k/sa.yaml":            fsys["k/sa.yaml"],
		"k/forgotten.yaml":     fsys["k/sa.yaml"],
	}
	if _, err := Load(unlisted, "k"); err == nil || !strings.Contains(err.Error(), "forgotten.yaml") {
		t.Errorf("a manifest left out of the kustomization: %v", err)
	}
	missing := fstest.MapFS{"k/kustomization.yaml": fsys["k/kustomization.yaml"]}
	if _, err := Load(missing, "k"); err == nil {
		t.Error("a listed resource that does not exist was accepted")
	}
}
