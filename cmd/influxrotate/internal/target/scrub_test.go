package target

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/rotation"
)

// held are the tokens a controller holds besides the one it publishes: the
// operator's and the writer's old one.
var held = []string{"operator_" + strings.Repeat("o", 40), "old_" + strings.Repeat("q", 40)}

// checkScrubbed fails when err is nil or quotes any token held or tok.
func checkScrubbed(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, tk := range append([]string{tok}, held...) {
		if strings.Contains(err.Error(), tk) {
			t.Errorf("%s: the error quotes a token (%s): %v", what, rotation.Fingerprint(tk), err)
		}
	}
	if !strings.Contains(err.Error(), rotation.Fingerprint(held[0])) {
		t.Errorf("%s: the error lost what the output said: %v", what, err)
	}
}

// A hook that prints every token it can find has its output scrubbed of
// every token the process holds, not only of the one it was given.
func TestExecOutputIsScrubbedOfEveryTokenHeld(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "held")
	if err := os.WriteFile(file, []byte(strings.Join(held, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := []string{"/bin/sh", "-c", `cat; cat "$0"; cat "$0" >&2; exit 3`, file}
	tg, err := New(config.Target{Type: config.TargetExec, Command: cmd, ReadCommand: cmd},
		Options{Scrubber: rotation.NewScrubber(held...)})
	if err != nil {
		t.Fatal(err)
	}
	checkScrubbed(t, "publish", tg.Publish(context.Background(), tok))
	_, err = tg.ReadBack(context.Background())
	checkScrubbed(t, "read back", err)
}

// An API server error that echoes the Secret, on write or on read back, is
// scrubbed of every token the process holds.
func TestKubernetesErrorsAreScrubbedOfEveryTokenHeld(t *testing.T) {
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "telegraf", Namespace: "monitoring"},
		Data:       map[string][]byte{"influx-token": []byte(held[1])}})
	echo := func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewBadRequest("refused: " + strings.Join(append([]string{tok}, held...), " "))
	}
	client.PrependReactor("update", "secrets", echo)
	tg, err := New(config.Target{Type: config.TargetKubernetes, Namespace: "monitoring", Secret: "telegraf", Key: "influx-token"},
		Options{Kube: client, Scrubber: rotation.NewScrubber(held...)})
	if err != nil {
		t.Fatal(err)
	}
	checkScrubbed(t, "publish", tg.Publish(context.Background(), tok))

	client.PrependReactor("get", "secrets", echo)
	_, err = tg.ReadBack(context.Background())
	checkScrubbed(t, "read back", err)
	if errors.Is(err, ErrNoToken) {
		t.Errorf("read back: %v", err)
	}
}
