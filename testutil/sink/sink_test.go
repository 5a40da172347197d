package sink

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func post(t *testing.T, url string, body []byte, gz bool) int {
	t.Helper()
	if gz {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		if _, err := w.Write(body); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		body = b.Bytes()
	}
	req, err := http.NewRequest(http.MethodPost, url+"/api/v2/write?org=o&bucket=b", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestCountsLinesPlainAndGzip(t *testing.T) {
	s := NewTest(t)
	cases := []struct {
		body string
		gz   bool
		want int64
	}{
		{"a v=1 1\nb v=2 2\n", false, 2},
		{"a v=1 1\nb v=2 2", false, 2}, // no final newline
		{"a v=1 1\nb v=2 2\nc v=3 3\n", true, 3},
		{"", false, 0},
		{"", true, 0},
	}
	var total int64
	for _, c := range cases {
		if code := post(t, s.URL(), []byte(c.body), c.gz); code != http.StatusNoContent {
			t.Fatalf("status %d for %q", code, c.body)
		}
		total += c.want
		if got := s.Lines(); got != total {
			t.Fatalf("after %q (gzip %t): %d lines, want %d", c.body, c.gz, got, total)
		}
	}
	if s.Requests() != int64(len(cases)) || s.Errors() != 0 {
		t.Fatalf("requests %d errors %d", s.Requests(), s.Errors())
	}
	s.Reset()
	if s.Lines() != 0 || s.Requests() != 0 {
		t.Fatal("Reset left totals")
	}
}

func TestBadGzipIsAnError(t *testing.T) {
	s := NewTest(t)
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/api/v2/write", bytes.NewReader([]byte("not gzip at all")))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || s.Errors() != 1 || s.Lines() != 0 {
		t.Fatalf("status %d errors %d lines %d", resp.StatusCode, s.Errors(), s.Lines())
	}
}
