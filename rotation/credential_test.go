package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// testToken looks like an InfluxDB 2.x token: 88 characters of base64url.
const testToken = "Zm9vYmFyYmF6cXV4X3Rlc3RfdG9rZW5fZm9yX2luZmx1eHJvdGF0ZV9vbmx5X25ldmVyX3JlYWxfMDEyMzQ1Njc4OQ=="

func TestCredentialNeverPrintsToken(t *testing.T) {
	c := NewCredential(testToken, "0a1b2c3d4e5f6071", `file "/run/token"`)
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%10.3s", "%-8v"} {
		outs = append(outs, fmt.Sprintf(verb, c))
	}
	outs = append(outs, c.String(), c.GoString(), fmt.Sprint(c), fmt.Sprintln(c),
		fmt.Sprintf("%v", []*Credential{c}), fmt.Sprintf("%+v", struct{ C *Credential }{c}),
		fmt.Sprintf("%#v", map[string]*Credential{"k": c}))
	j, err := json.Marshal(map[string]any{"cred": c})
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j))
	txt, _ := c.MarshalText()
	outs = append(outs, string(txt))
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("x", "credential", c, "any", any(c))
	}
	outs = append(outs, buf.String(), fmt.Errorf("wrapped: %w", errors.New(c.String())).Error())
	for _, o := range outs {
		if strings.Contains(o, testToken) || strings.Contains(o, testToken[:20]) {
			t.Errorf("output reveals the token: %s", o)
		}
	}
	if !strings.Contains(c.String(), c.Fingerprint()) {
		t.Errorf("String %q lacks the fingerprint %q", c.String(), c.Fingerprint())
	}
	if !strings.Contains(string(j), c.Fingerprint()) || !strings.Contains(string(j), "0a1b2c3d4e5f6071") {
		t.Errorf("JSON %s lacks fingerprint or auth id", j)
	}
	var nilCred *Credential
	if got := fmt.Sprint(nilCred); got != "token <none>" {
		t.Errorf("nil credential prints %q", got)
	}
}

func TestCredentialAccessors(t *testing.T) {
	c := NewCredential(testToken, "id1", "test")
	if c.Token() != testToken || c.AuthorizationHeader() != "Token "+testToken || c.AuthID() != "id1" || c.Origin() != "test" {
		t.Fatalf("accessors wrong")
	}
	if fp := c.Fingerprint(); !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+12 {
		t.Errorf("fingerprint %q: want sha256: and 12 hex digits", fp)
	}
	if !c.Equal(NewCredential(testToken, "", "")) || c.Equal(NewCredential(testToken+"x", "", "")) || c.Equal(nil) {
		t.Errorf("Equal compares tokens")
	}
}

func TestParseTokenTrims(t *testing.T) {
	for name, in := range map[string]string{
		"plain":              testToken,
		"trailing newline":   testToken + "\n",
		"kubectl CRLF":       testToken + "\r\n",
		"BOM":                "\uFEFF" + testToken,
		"BOM and newline":    "\uFEFF" + testToken + "\n",
		"surrounding spaces": "  \t" + testToken + " \t\n",
		"several newlines":   "\n\n" + testToken + "\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseToken([]byte(in))
			if err != nil || got != testToken {
				t.Fatalf("ParseToken: err %v, token matches %v", err, got == testToken)
			}
		})
	}
}

func TestParseTokenRejectsBadContent(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"empty":            {nil, ErrTokenEmpty},
		"only whitespace":  {[]byte(" \n\t\r\n"), ErrTokenEmpty},
		"only BOM":         {[]byte("\uFEFF\n"), ErrTokenEmpty},
		"over 4 KiB":       {bytes.Repeat([]byte("a"), MaxTokenSize+1), ErrTokenTooLong},
		"huge file":        {bytes.Repeat([]byte("a"), 1<<20), ErrTokenTooLong},
		"two lines":        {[]byte(testToken + "\n" + testToken), ErrTokenMultiline},
		"CR inside":        {[]byte("abc\rdef"), ErrTokenMultiline},
		"NUL byte":         {[]byte("abc\x00def"), ErrTokenNonPrintable},
		"escape sequence":  {[]byte("abc\x1b[31mdef"), ErrTokenNonPrintable},
		"tab inside":       {[]byte("abc\tdef"), ErrTokenNonPrintable},
		"invalid UTF-8":    {[]byte("abc\xff\xfedef"), ErrTokenNonPrintable},
		"binary":           {[]byte{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03}, ErrTokenNonPrintable},
		"zero-width space": {[]byte("abc\u200bdef"), ErrTokenNonPrintable},
		"line separator":   {[]byte("abc\u2028def"), ErrTokenNonPrintable},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseToken(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if got != "" {
				t.Errorf("returned a token with an error")
			}
			if s := strings.TrimSpace(string(tc.in)); s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("error repeats the content: %v", err)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{testToken, testToken + "\n", "\uFEFF" + testToken + "\r\n", "", " ", "a\nb",
		"apiv3_" + testToken[:86], "\x00", "\xff", "tok en", "\u00a0tok\u00a0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tok, err := ParseToken(in)
		if err != nil {
			if tok != "" {
				t.Fatalf("token returned with error %v", err)
			}
			trimmed := strings.TrimSpace(string(in))
			if len(trimmed) >= 4 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q contains the input", err)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenSize || !utf8.ValidString(tok) {
			t.Fatalf("accepted invalid token of %d bytes", len(tok))
		}
		if strings.TrimSpace(tok) != tok {
			t.Fatalf("accepted token with white space at its ends")
		}
		for _, r := range tok {
			if unicode.IsControl(r) || !unicode.IsPrint(r) {
				t.Fatalf("accepted token with control or non-printable rune %U", r)
			}
		}
		if !bytes.Contains(in, []byte(tok)) {
			t.Fatalf("token is not part of the input")
		}
	})
}
