package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/controller"
	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/capture"
	"github.com/influxrotate/influxrotate/testutil/k8sfake"
)

// The command line with the journal in the Kubernetes API and the audit
// chain on stdout only (no file at all), as the CronJob of
// deploy/kubernetes runs it.
func TestRotateWithKubernetesStateAndAuditOnStdout(t *testing.T) {
	e := newCLIEnv(t, "")
	data, err := os.ReadFile(e.cfg)
	must(t, err)
	cfg := strings.Replace(string(data), "state_dir = \"state\"\naudit_log = \"audit.jsonl\"\n",
		"audit_stdout = true\n[state]\ntype = \"kubernetes\"\nnamespace = \"monitoring\"\nlease_duration = \"1s\"\n", 1)
	if cfg == string(data) {
		t.Fatal("configuration template changed")
	}
	must(t, os.WriteFile(e.cfg, []byte(cfg), 0o600))
	kube := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-state", Namespace: "monitoring"}},
		&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "influxrotate-telegraf", Namespace: "monitoring"}})
	k8sfake.ResourceVersions(kube)
	run := func(args ...string) (int, string) {
		var out capture.Buffer
		env := Env{Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" },
			Options: func(o *controller.Options) { o.Kube = kube }}
		return Main(context.Background(), args, env), out.String()
	}
	code, out := run("rotate", "-config", e.cfg, "-force")
	if code != ExitOK {
		t.Fatalf("rotate: exit %d\n%s", code, out)
	}
	// Only the audit records, as a log collector would pick them out.
	var chain bytes.Buffer
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, `{"seq"`) {
			fmt.Fprintln(&chain, line)
		}
	}
	n, err := rotation.VerifyAuditLog(&chain)
	if err != nil || n < 8 {
		t.Fatalf("audit chain on stdout: %d records, %v\n%s", n, err, out)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "state")); !os.IsNotExist(err) {
		t.Errorf("a state directory exists: %v", err)
	}
	code, out = run("status", "-config", e.cfg)
	if code != ExitOK || !strings.Contains(out, "last=ok(") || strings.Contains(out, e.initial.ID) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	for _, a := range e.srv.Authorizations() {
		if a.Token != "" && strings.Contains(out+chain.String(), a.Token) {
			t.Errorf("a token leaked (%s)", rotation.Fingerprint(a.Token))
		}
	}
	if strings.Contains(chain.String(), e.initial.Token) {
		t.Error("the initial token leaked")
	}
}
