package secscan

import (
	"encoding/base64"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
)

const tok = "s3cr3t+token/with==padding_AbCdEfGh"

func TestFindsEveryForm(t *testing.T) {
	var s Scanner
	s.Add(tok, "", "short")
	if s.Len() != 1 {
		t.Fatalf("%d tokens registered, want 1 (empty and short ones ignored)", s.Len())
	}
	cases := map[string]string{
		"plain":     "Authorization: Token " + tok,
		"url":       "GET /?token=" + url.QueryEscape(tok),
		"base64":    "x " + base64.StdEncoding.EncodeToString([]byte(tok)),
		"base64url": base64.URLEncoding.EncodeToString([]byte(tok)),
		"path":      "/echo/" + url.PathEscape(tok),
		"url lower": "GET /?token=" + strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(url.QueryEscape(tok)),
		"raw":       base64.RawStdEncoding.EncodeToString([]byte(tok)) + "!",
		"rawurl":    base64.RawURLEncoding.EncodeToString([]byte(tok)) + "!",
		"basic1":    "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+tok)),
		"basic2":    "Basic " + base64.URLEncoding.EncodeToString([]byte("ab:"+tok)),
		"basic3":    "Basic " + base64.StdEncoding.EncodeToString([]byte("abc:"+tok)),
	}
	for form, text := range cases {
		hits := s.Scan("case "+form, []byte(text))
		if len(hits) == 0 {
			t.Errorf("%s form not found", form)
			continue
		}
		if strings.Contains(hits[0].String(), tok) {
			t.Fatalf("hit report contains the token")
		}
		if !strings.Contains(hits[0].String(), rotation.Fingerprint(tok)) {
			t.Errorf("hit report %q lacks the fingerprint", hits[0])
		}
	}
	if hits := s.Scan("clean", []byte("token "+rotation.Fingerprint(tok))); len(hits) != 0 {
		t.Fatalf("fingerprint reported as a leak: %v", hits)
	}
}

func TestScanTreeSkipsAndCounts(t *testing.T) {
	var s Scanner
	s.Add(tok)
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token", tok)
	write("log", "all fine")
	write("audit", `{"msg":"`+tok+`"}`)
	hits, files, err := s.ScanTree(dir, func(p string) bool { return filepath.Base(p) == "token" })
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 || len(hits) != 1 || !strings.HasSuffix(hits[0].Where, "audit") {
		t.Fatalf("files %d hits %v", files, hits)
	}
}

func TestAddServerRegistersIssuedTokens(t *testing.T) {
	srv, err := influxv2.New(influxv2.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	a := srv.WriteAuthorization("o", "b")
	var s Scanner
	s.AddServer(srv)
	if len(s.Scan("x", []byte(a.Token))) == 0 || len(s.Scan("y", []byte(srv.OperatorToken()))) == 0 {
		t.Fatal("server tokens not registered")
	}
}
