package rotation

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxTokenSize is the largest token accepted from a file or variable. Real
// tokens are 88 (InfluxDB 2.x) or 92 (InfluxDB 3) characters; anything near
// this limit is a mistake, such as the wrong file mounted.
const MaxTokenSize = 4096

// Credential is one API token. Every way of printing it (String, Format,
// GoString, JSON, slog) shows the fingerprint, never the token, so a
// Credential can be logged or put in an error without thought.
//
// A Credential is immutable; share it freely between goroutines.
type Credential struct {
	token       string
	header      string
	authID      string
	fingerprint string
	origin      string
	loadedAt    time.Time
}

// NewCredential returns a credential for token. authID is the InfluxDB
// authorization ID when known, and origin says where the token came from
// (such as `file "/etc/telegraf/token"`) for log lines.
func NewCredential(token, authID, origin string) *Credential {
	return &Credential{
		token:       token,
		header:      "Token " + token,
		authID:      authID,
		fingerprint: Fingerprint(token),
		origin:      origin,
		loadedAt:    time.Now(),
	}
}

// Token returns the secret itself. Call it only to build a request.
func (c *Credential) Token() string { return c.token }

// AuthorizationHeader returns "Token <token>", built once so that setting the
// header on each request allocates nothing.
func (c *Credential) AuthorizationHeader() string { return c.header }

// AuthID returns the InfluxDB authorization ID, or "" when unknown.
func (c *Credential) AuthID() string { return c.authID }

// Fingerprint returns the token's fingerprint, see the Fingerprint function.
func (c *Credential) Fingerprint() string { return c.fingerprint }

// Origin says where the token came from.
func (c *Credential) Origin() string { return c.origin }

// LoadedAt is when the token was read.
func (c *Credential) LoadedAt() time.Time { return c.loadedAt }

// Equal reports whether both credentials hold the same token, in constant time.
func (c *Credential) Equal(o *Credential) bool {
	if c == nil || o == nil {
		return c == o
	}
	return subtle.ConstantTimeCompare([]byte(c.token), []byte(o.token)) == 1
}

// String returns "token sha256:<fingerprint>".
func (c *Credential) String() string {
	if c == nil {
		return "token <none>"
	}
	return "token " + c.fingerprint
}

// GoString keeps %#v from printing the struct fields.
func (c *Credential) GoString() string { return c.String() }

// Format makes every fmt verb print String, so %v, %+v, %#v, %s, %q and %x
// never reach the token field.
func (c *Credential) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	_, _ = f.Write([]byte(c.String()))
}

// MarshalJSON encodes the fingerprint and authorization ID only.
func (c *Credential) MarshalJSON() ([]byte, error) {
	if c == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteString(`{"fingerprint":"`)
	b.WriteString(c.fingerprint)
	b.WriteString(`"`)
	if c.authID != "" {
		fmt.Fprintf(&b, `,"auth_id":%q`, c.authID)
	}
	b.WriteString("}")
	return b.Bytes(), nil
}

// MarshalText keeps encoders that prefer TextMarshaler (TOML, YAML, map
// keys) on the fingerprint too.
func (c *Credential) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// LogValue makes slog print the fingerprint.
func (c *Credential) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<none>")
	}
	attrs := []slog.Attr{slog.String("fingerprint", c.fingerprint)}
	if c.authID != "" {
		attrs = append(attrs, slog.String("auth_id", c.authID))
	}
	return slog.GroupValue(attrs...)
}

// Fingerprint identifies a token without revealing it: "sha256:" and the
// first 12 hex digits of the token's SHA-256. Twelve digits (48 bits) keep
// accidental collisions out of reach for any realistic number of tokens
// while staying short enough for a log line.
func Fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// Errors returned by ParseToken. They describe the content, never repeat it.
var (
	ErrTokenEmpty        = errors.New("token is empty")
	ErrTokenTooLong      = fmt.Errorf("token is longer than %d bytes", MaxTokenSize)
	ErrTokenMultiline    = errors.New("token spans more than one line")
	ErrTokenNonPrintable = errors.New("token contains non-printable or non-UTF-8 characters")
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// ParseToken turns the content of a token file or variable into a token:
// a leading UTF-8 byte order mark and surrounding white space (including the
// trailing newline that `kubectl create secret --from-file` keeps) are
// removed; empty, over-long, multi-line or non-printable content is refused.
// The error wraps one of the ErrToken* values and never contains the content.
func ParseToken(content []byte) (string, error) {
	if len(content) > MaxTokenSize+64 {
		// Refuse early rather than scanning a large wrong file.
		return "", ErrTokenTooLong
	}
	content = bytes.TrimPrefix(content, utf8BOM)
	content = bytes.TrimSpace(content)
	switch {
	case len(content) == 0:
		return "", ErrTokenEmpty
	case len(content) > MaxTokenSize:
		return "", ErrTokenTooLong
	case bytes.ContainsAny(content, "\r\n"):
		return "", ErrTokenMultiline
	case !utf8.Valid(content):
		return "", ErrTokenNonPrintable
	}
	for _, r := range string(content) {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) && r != ' ' {
			return "", ErrTokenNonPrintable
		}
	}
	return string(content), nil
}
