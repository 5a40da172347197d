package rotation

import (
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/influxrotate/influxrotate/testutil/capture"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// watcher and Rotator goroutine must be stopped by Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestLogger() (*slog.Logger, *capture.Buffer) {
	b := new(capture.Buffer)
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// assertNoSecret fails when any of tokens appears in out.
func assertNoSecret(t *testing.T, what, out string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if tok != "" && strings.Contains(out, tok) {
			t.Errorf("%s reveals a token (%s)", what, Fingerprint(tok))
		}
	}
}

// tokenN returns a distinct, valid-looking token.
func tokenN(n int) string {
	s := strings.Repeat(string(rune('A'+n%26)), 40)
	return s + "_" + strings.Repeat("x", 40) + "_" + strconv.Itoa(n) + "=="
}
