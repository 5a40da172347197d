package backend

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"

	"github.com/influxrotate/influxrotate/testutil/secscan"
)

// TestAuthorizationPrintsWithoutItsToken: every way Go prints a value (fmt
// verbs, a pointer, a slice, slog) shows the fingerprint, never the token.
func TestAuthorizationPrintsWithoutItsToken(t *testing.T) {
	const tok = "printed-token+with/base64==chars-0123456789"
	a := &Authorization{ID: "0123456789abcdef", Token: tok, Active: true, Permissions: []Permission{{Action: "write", Type: "buckets"}}}
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		fmt.Fprintf(&out, verb+"\n", *a)
		fmt.Fprintf(&out, verb+"\n", a)
		fmt.Fprintf(&out, verb+"\n", []*Authorization{a})
	}
	slog.New(slog.NewTextHandler(&out, nil)).Info("x", "authorization", a, "value", *a)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "authorization", a)
	var scan secscan.Scanner
	scan.Add(tok)
	scan.Check(t, "printed authorization", out.Bytes())
	if !bytes.Contains(out.Bytes(), []byte("0123456789abcdef")) {
		t.Fatalf("the ID is not printed either:\n%s", out.String())
	}
}
