package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	manifests "github.com/influxrotate/influxrotate/deploy/kubernetes"
)

const kubeState = `
url = "http://127.0.0.1:8086"
operator_token_file = "op"
audit_stdout = true
[state]
type = "kubernetes"
namespace = "monitoring"
[[credential]]
name = "telegraf"
org = "acme"
authorization_id = "0123456789abcdef"
  [[credential.target]]
  type = "file"
  path = "/run/token"
`

func TestKubernetesStateDefaults(t *testing.T) {
	cfg, err := Parse([]byte(kubeState))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.State
	if s.Type != StateKubernetes || s.ConfigMap != DefaultStateConfigMap || s.LeasePrefix != DefaultLeasePrefix ||
		time.Duration(s.LeaseDuration) != DefaultLeaseDuration || cfg.Run.LeaderLease != DefaultLeaderLease || cfg.Run.Workers != DefaultRunWorkers {
		t.Errorf("defaults not applied: %+v %+v", s, cfg.Run)
	}
	if got := s.LeaseName("telegraf"); got != "influxrotate-telegraf" {
		t.Errorf("lease name %q", got)
	}
	if cfg.AuditLog != "" {
		t.Errorf("audit_log %q", cfg.AuditLog)
	}
	// state_dir keeps working, and is the directory store.
	cfg, err = Parse([]byte(minimal))
	if err != nil || cfg.State.Type != StateDirectory || cfg.StateDir != "state" {
		t.Fatalf("directory store: %+v %v", cfg, err)
	}
}

func TestStateRejects(t *testing.T) {
	cases := map[string]struct{ from, edit, want string }{
		"unknown type":                 {strings.Replace(kubeState, `type = "kubernetes"`, `type = "etcd"`, 1), "", `[state] type "etcd"`},
		"state_dir with kubernetes":    {strings.Replace(kubeState, "audit_stdout = true", "audit_stdout = true\nstate_dir = \"/var/lib/x\"", 1), "", "state_dir does not apply"},
		"no namespace":                 {kubeState, `namespace = ""`, "namespace is required"},
		"lease duration in fractions":  {kubeState, "namespace = \"monitoring\"\nlease_duration = \"1500ms\"", "whole seconds"},
		"lease duration below 1s":      {kubeState, "namespace = \"monitoring\"\nlease_duration = \"0s\"\nlease_prefix = \"x-\"\nconfigmap = \"Bad_Name\"", "configmap"},
		"credential not a lease name":  {strings.Replace(kubeState, `name = "telegraf"`, `name = "Telegraf_Edge"`, 1), "", "Lease name"},
		"kubernetes option with files": {strings.Replace(minimal, "[[credential]]", "[state]\nnamespace = \"x\"\n[[credential]]", 1), "", "apply to type \"kubernetes\" only"},
		"leader lease without kube":    {strings.Replace(minimal, "[[credential]]", "[run]\nleader_lease = \"x\"\n[[credential]]", 1), "", "leader_lease needs"},
		"neither audit":                {strings.Replace(kubeState, "audit_stdout = true", "", 1), "", "audit_log or audit_stdout"},
		"bad listen":                   {kubeState + "[run]\nlisten = \"8080\"\n", "", `[run] listen "8080"`},
		"leader lease is a credential": {kubeState + "[run]\nleader_lease = \"influxrotate-telegraf\"\n", "", "is the leader_lease"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			doc := c.from
			if c.edit != "" {
				doc = strings.Replace(doc, `namespace = "monitoring"`, c.edit, 1)
			}
			_, err := Parse([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// The configuration shipped in deploy/kubernetes loads, uses the kubernetes
// store and target, and names exactly the objects its Role grants.
func TestDeployedConfiguration(t *testing.T) {
	set, err := manifests.Base()
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, o := range set.All() {
		if cm, ok := o.(*corev1.ConfigMap); ok && cm.Name == "influxrotate-config" {
			doc = cm.Data["influxrotate.toml"]
		}
	}
	if doc == "" {
		t.Fatal("no influxrotate.toml in the ConfigMap influxrotate-config")
	}
	t.Setenv("INFLUX_URL", "https://influxdb.monitoring.svc:8086")
	t.Setenv("INFLUX_ORG", "acme")
	t.Setenv("POD_NAME", "influxrotate-run-0")
	t.Setenv("POD_NAMESPACE", "monitoring")
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.State.Type != StateKubernetes || time.Duration(cfg.State.LeaseDuration) != 30*time.Second || !cfg.AuditStdout || cfg.Run.Listen != ":8080" {
		t.Errorf("state %+v audit_stdout %v run %+v", cfg.State, cfg.AuditStdout, cfg.Run)
	}
	role, err := manifests.Role()
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string][]string{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			granted[res] = append(granted[res], r.ResourceNames...)
		}
	}
	need := map[string][]string{"configmaps": {cfg.State.ConfigMap}, "leases": {cfg.Run.LeaderLease}}
	for _, cr := range cfg.Credentials {
		need["leases"] = append(need["leases"], cfg.State.LeaseName(cr.Name))
		for _, tg := range cr.Targets {
			if tg.Type != TargetKubernetes || tg.Namespace != cfg.State.Namespace {
				t.Errorf("credential %s: target %+v, want a kubernetes Secret in the store's namespace", cr.Name, tg)
			}
			need["secrets"] = append(need["secrets"], tg.Secret)
		}
	}
	for res, names := range need {
		for _, n := range names {
			if !slices.Contains(granted[res], n) {
				t.Errorf("the configuration uses %s %q, which the Role does not name", res, n)
			}
		}
		slices.Sort(names)
		have := slices.Clone(granted[res])
		slices.Sort(have)
		if !slices.Equal(names, have) {
			t.Errorf("%s: the Role grants %v, the configuration uses %v", res, have, names)
		}
	}
}
