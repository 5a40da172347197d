// Package realtools starts the real components end-to-end tests run against:
// an InfluxDB 1.8 server (influxd) and Telegraf, both built by `make tools`
// into .tools/bin at pinned versions.
//
// Mocks only prove we agree with ourselves; these helpers let a test show
// that a real Telegraf, through our plugin or the stock one, gets points into
// a real server with real authentication, and that a revoked user really is
// refused with the status our code expects.
//
// Conventions:
//   - A test that uses these helpers is an end-to-end test; name it TestE2E…
//     so `make test` runs it in its end-to-end step (and `go test -short`
//     skips it).
//   - Binary skips the test when the binary is missing ("run `make tools`"),
//     except under `make test`, which sets INFLUXROTATE_REQUIRE_TOOLS=1 so a
//     missing binary fails instead of silently skipping.
//   - Everything binds to 127.0.0.1 on free ports, lives in t.TempDir(), is
//     stopped by t.Cleanup, and dumps the tail of its log when the test fails.
package realtools

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ModulePath is the module whose root holds .tools/bin.
const ModulePath = "github.com/influxrotate/influxrotate"

// RequireToolsEnv, when "1", turns a missing binary into a failure.
const RequireToolsEnv = "INFLUXROTATE_REQUIRE_TOOLS"

// RepoRoot is the directory of the go.mod declaring ModulePath, found by
// walking up from the working directory (a package dir under go test).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for range 64 {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && declaresModule(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("no go.mod for %s above the working directory", ModulePath)
}

func declaresModule(gomod []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" && strings.Trim(f[1], `"`) == ModulePath {
			return true
		}
	}
	return false
}

// ToolsBin is the repository's .tools/bin.
func ToolsBin() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".tools", "bin"), nil
}

// Binary returns the path of .tools/bin/<name>. It skips the test under
// -short, and when the binary is missing (fails instead when
// INFLUXROTATE_REQUIRE_TOOLS=1, as under `make test`).
func Binary(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("end-to-end test needs the real %s; skipped with -short", name)
	}
	bin, err := ToolsBin()
	if err != nil {
		t.Fatalf("realtools: %v", err)
	}
	p := filepath.Join(bin, name)
	fi, err := os.Stat(p)
	if err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return p
	}
	msg := fmt.Sprintf("realtools: %s not found (%v): run `make tools`", p, err)
	if os.Getenv(RequireToolsEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreePort returns a 127.0.0.1 port nobody listens on right now. Another
// process can take it before the caller binds; starters retry on that.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("realtools: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// output collects a process's stdout and stderr; safe for concurrent use.
// Every write wakes the waiters, so WaitFor needs no polling.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

// maxOutput bounds memory for chatty processes; older output is dropped.
const maxOutput = 32 << 20

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.buf.Len() > maxOutput {
		keep := bytes.Clone(o.buf.Bytes()[o.buf.Len()-maxOutput/2:])
		o.buf.Reset()
		o.buf.Write(keep)
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// snapshot returns the output so far and a channel closed on the next write.
func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String(), o.changed
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
