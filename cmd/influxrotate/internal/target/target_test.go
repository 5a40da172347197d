package target

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/influxrotate/influxrotate/rotation"
)

const tok = "tok_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_=="

func TestFileWritesAtomicallyWithMode(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	f := &File{Path: filepath.Join(dir, "token"), Mode: 0o600, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := f.ReadBack(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("read back before publish: %v", err)
	}
	if err := f.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if got, err := f.ReadBack(context.Background()); err != nil || got != tok {
		t.Fatalf("read back %s, %v", rotation.Fingerprint(got), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temp files left: %v", entries)
	}
	if logs.Len() != 0 {
		t.Errorf("unexpected warning: %s", logs.String())
	}
	// A world-readable mode is allowed but warned about, without the token.
	f.Mode = 0o644
	if err := f.Publish(context.Background(), tok+"2"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "readable by every user") || strings.Contains(logs.String(), tok) {
		t.Errorf("warning: %q", logs.String())
	}
}

func TestSecretDirKeepsOtherKeys(t *testing.T) {
	dir := t.TempDir()
	s := &SecretDir{Dir: dir, Key: "token", Mode: 0o600, Logger: slog.New(slog.DiscardHandler)}
	if err := s.Publish(context.Background(), "first"); err != nil {
		t.Fatal(err)
	}
	// Another key, such as a CA certificate, lives in the same mount.
	other := &SecretDir{Dir: dir, Key: "ca.crt", Mode: 0o600, Logger: slog.New(slog.DiscardHandler)}
	if err := other.Publish(context.Background(), "cert"); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadBack(context.Background()); err != nil || got != tok {
		t.Fatalf("read back %s, %v", rotation.Fingerprint(got), err)
	}
	if got, _ := other.ReadBack(context.Background()); got != "cert" {
		t.Errorf("other key lost: %q", got)
	}
	if _, err := os.Readlink(filepath.Join(dir, "..data")); err != nil {
		t.Errorf("not the kubelet layout: %v", err)
	}
}

func TestKubernetesUpdatesOneKey(t *testing.T) {
	client := fake.NewClientset(&corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "telegraf", Namespace: "monitoring"},
		Data:       map[string][]byte{"other": []byte("keep"), "influx-token": []byte("old")},
	})
	k := &Kubernetes{Client: client, Namespace: "monitoring", Secret: "telegraf", Key: "influx-token"}
	if err := k.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	got, err := k.ReadBack(context.Background())
	if err != nil || got != tok {
		t.Fatalf("read back %s, %v", rotation.Fingerprint(got), err)
	}
	s, _ := client.CoreV1().Secrets("monitoring").Get(context.Background(), "telegraf", metav1.GetOptions{})
	if string(s.Data["other"]) != "keep" {
		t.Errorf("other key changed: %q", s.Data["other"])
	}
	// A missing Secret is created.
	k2 := &Kubernetes{Client: client, Namespace: "monitoring", Secret: "new", Key: "token"}
	if _, err := k2.ReadBack(context.Background()); !errors.Is(err, ErrNoToken) {
		t.Fatalf("read back of a missing secret: %v", err)
	}
	if err := k2.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got, _ := k2.ReadBack(context.Background()); got != tok {
		t.Error("created secret does not hold the token")
	}
}

func TestExecGetsTheTokenOnStdinOnly(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "store.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat > \"$1\"\n{ echo \"$@\"; env; } > \"$1.env\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "token")
	e := &Exec{Command: []string{"/bin/sh", script, out}, ReadCommand: []string{"/bin/cat", out},
		Env: []string{"INFLUXROTATE_CREDENTIAL=c"}, Logger: slog.New(slog.DiscardHandler)}
	if err := e.Publish(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if got, err := e.ReadBack(context.Background()); err != nil || got != tok {
		t.Fatalf("read back %s, %v", rotation.Fingerprint(got), err)
	}
	env, _ := os.ReadFile(out + ".env")
	if strings.Contains(string(env), tok) {
		t.Error("the token is in argv or the environment")
	}
	if !strings.Contains(string(env), "INFLUXROTATE_FINGERPRINT="+rotation.Fingerprint(tok)) {
		t.Error("no fingerprint in the environment")
	}
	// A failing command's output is in the error, with the token masked.
	bad := &Exec{Command: []string{"/bin/sh", "-c", "cat; exit 3"}, Logger: slog.New(slog.DiscardHandler)}
	err := bad.Publish(context.Background(), tok)
	if err == nil || strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), rotation.Fingerprint(tok)) {
		t.Errorf("error %v", err)
	}
	if _, err := bad.ReadBack(context.Background()); !errors.Is(err, ErrUnreadable) {
		t.Errorf("read back without read_command: %v", err)
	}
}
