//go:build unix

package influxdb_v2_rotating

// TLS certificate changes and the bad-inputs catalogue: token files,
// configurations and server answers an operator can get wrong. Each case
// gives a clear error naming the file or option, keeps the process running
// where that makes sense, and loses nothing.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/influxdata/telegraf/config"
	"github.com/influxdata/telegraf/models"

	"github.com/influxrotate/influxrotate/rotation"
	"github.com/influxrotate/influxrotate/testutil/influxv2"
	"github.com/influxrotate/influxrotate/testutil/wait"
)

// testCA issues loopback server certificates.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a certificate for 127.0.0.1.
func (ca *testCA) leaf(serial int64) *tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "influxdb"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFront serves target over TLS with a certificate that can be changed;
// keep-alives are off so every request makes a new handshake and sees the
// current certificate.
type tlsFront struct {
	url  string
	cert atomic.Pointer[tls.Certificate]
}

func newTLSFront(t *testing.T, target string, cert *tls.Certificate) *tlsFront {
	f := &tlsFront{}
	f.cert.Store(cert)
	u, _ := url.Parse(target)
	srv := &http.Server{Handler: httputil.NewSingleHostReverseProxy(u), ReadHeaderTimeout: 5 * time.Second}
	srv.SetKeepAlivesEnabled(false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return f.cert.Load(), nil },
		MinVersion:     tls.VersionTLS12,
	})
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(tl) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	f.url = "https://" + ln.Addr().String()
	return f
}

// The server's certificate changes: renewed by the same CA (writes go on),
// replaced by one the client does not trust (writes are kept, the x509
// error is logged), then fixed (the backlog is stored).
func TestProofFaultTLSCertificateChange(t *testing.T) {
	r := newProofRig(t, influxv2.Options{})
	a := r.auth()
	r.publish(a.Token)
	ca := newTestCA(t, "proof CA")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	front := newTLSFront(t, r.srv.URL(), ca.leaf(1))
	r.start(front.url, func(p *InfluxDB) { p.TLSCA = caFile })

	r.add(200)
	if err := r.flush(); err != nil {
		t.Fatalf("flush with the first certificate: %v", err)
	}
	front.cert.Store(ca.leaf(2)) // renewed
	r.add(200)
	if err := r.flush(); err != nil {
		t.Fatalf("flush after renewal by the same CA: %v", err)
	}
	rogue := newTestCA(t, "someone else")
	front.cert.Store(rogue.leaf(3))
	r.add(200)
	if err := r.flush(); err == nil || !IsRetryable(err) {
		t.Fatalf("flush to an untrusted certificate: %v, want a retryable error", err)
	}
	if r.ro.BufferLength() != 200 {
		t.Fatalf("%d of 200 metrics kept while the certificate is untrusted", r.ro.BufferLength())
	}
	r.logged("When writing to [", "certificate")
	if r.stat("auth_failures") != 0 {
		t.Fatal("a TLS failure was counted as a token refusal")
	}
	front.cert.Store(ca.leaf(4))
	r.drain(10 * time.Second)
	r.nothingLost()
}

// Bad token file contents and states, met while a good token is in use:
// the good token stays, source_errors moves, one line names the file, and
// writes go on. Content that is valid after trimming (BOM, CRLF) is adopted.
func TestProofBadTokenFiles(t *testing.T) {
	type tc struct {
		name    string
		make    func(r *proofRig) // turns r.path into the bad input
		adopted bool              // the content is a valid token after all
		want    string            // in the log line
	}
	var next influxv2.Authorization
	cases := []tc{
		{"empty", func(r *proofRig) { r.publish("") }, false, "empty"},
		{"whitespace", func(r *proofRig) { r.publish(" \t\n \n") }, false, "empty"},
		{"BOM only", func(r *proofRig) { r.publish("\ufeff\n") }, false, "empty"},
		{"BOM then token", func(r *proofRig) { r.publish("\ufeff" + next.Token + "\n") }, true, ""},
		{"CRLF", func(r *proofRig) { r.publish(next.Token + "\r\n") }, true, ""},
		{"1 MiB", func(r *proofRig) { r.publish(strings.Repeat("A", 1<<20)) }, false, "longer than"},
		{"binary", func(r *proofRig) { r.publish("\x00\x01\x02\xff\xfe binary") }, false, "non-printable"},
		{"two lines", func(r *proofRig) { r.publish(next.Token + "\n" + next.Token + "x\n") }, false, "more than one line"},
		{"a directory", func(r *proofRig) {
			if err := os.Remove(r.path); err != nil {
				r.t.Fatal(err)
			}
			if err := os.Mkdir(r.path, 0o700); err != nil {
				r.t.Fatal(err)
			}
		}, false, "directory"},
		{"symlink loop", func(r *proofRig) {
			if err := os.Remove(r.path); err != nil {
				r.t.Fatal(err)
			}
			loop := filepath.Join(r.dir, "loop")
			if err := os.Symlink(r.path, loop); err != nil {
				r.t.Fatal(err)
			}
			if err := os.Symlink(loop, r.path); err != nil {
				r.t.Fatal(err)
			}
		}, false, "too many links"},
		{"unreadable", func(r *proofRig) {
			if os.Geteuid() == 0 {
				r.t.Skip("running as root: file permissions do not stop root from reading")
			}
			if err := os.Chmod(r.path, 0); err != nil {
				r.t.Fatal(err)
			}
		}, false, "permission denied"},
		{"a named pipe", func(r *proofRig) {
			// Opening a FIFO blocks until a writer appears. If the source
			// opens it blindly, its goroutine (and any flush that re-reads
			// the token after a refusal) hangs; unblock it so the test ends.
			tmp := filepath.Join(r.dir, ".fifo")
			if err := syscall.Mkfifo(tmp, 0o600); err != nil {
				r.t.Fatal(err)
			}
			if err := os.Rename(tmp, r.path); err != nil {
				r.t.Fatal(err)
			}
			refused := wait.Check(r.t, 3*time.Second, "a source error for the named pipe put in place of the token file "+
				"(none means the reader is blocked in open(2): rotation.FileSource should refuse anything but a regular file before opening it)",
				func() bool { return r.stat("source_errors") > 0 })
			if !refused {
				for range 50 { // a reader may open it again at the next event
					w, err := os.OpenFile(r.path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
					if err != nil {
						break // ENXIO: nobody is blocked reading
					}
					w.Close()
					time.Sleep(20 * time.Millisecond)
				}
			}
		}, false, "not a regular file"},
		{"deleted", func(r *proofRig) {
			if err := os.Remove(r.path); err != nil {
				r.t.Fatal(err)
			}
		}, false, "missing"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newProofRig(t, influxv2.Options{})
			a := r.auth()
			next = r.auth()
			r.publish(a.Token)
			r.start("", func(p *InfluxDB) { p.TokenRereadInterval = config.Duration(50 * time.Millisecond) })
			r.add(100)
			if err := r.flush(); err != nil {
				t.Fatal(err)
			}
			c.make(r)
			if c.adopted {
				r.waitActive(next.Token)
			} else {
				r.waitFor("source_errors to move", func() bool { return r.stat("source_errors") > 0 })
				r.logged(r.path, c.want)
				if cur := r.p.Rotator().Current(); cur == nil || cur.Fingerprint() != rotation.Fingerprint(a.Token) {
					t.Fatalf("active token %v after bad input, want the good one", cur)
				}
			}
			r.add(100)
			r.drain(10 * time.Second)
			r.nothingLost()
		})
	}
}

// At start-up with strict = true a bad token file stops Init with an error
// naming the file; without strict the plugin starts and waits for a token.
func TestProofBadTokenFileAtStartup(t *testing.T) {
	for _, content := range []string{"", "\x00bin", strings.Repeat("A", 1<<20)} {
		r := newProofRig(t, influxv2.Options{})
		r.publish(content)
		p := New()
		p.URLs = []string{r.srv.URL()}
		p.TokenFile = r.path
		p.Strict = true
		err := p.Init()
		if err == nil || !strings.Contains(err.Error(), r.path) || !strings.Contains(err.Error(), "token_file") {
			t.Fatalf("strict Init with a bad file: %v, want an error naming token_file and the path", err)
		}
		if strings.Contains(err.Error(), content) && content != "" {
			t.Fatal("the error repeats the file's content")
		}
	}
	r := newProofRig(t, influxv2.Options{})
	r.publish("")
	r.start("", nil)
	r.add(50)
	if err := r.flush(); err == nil || !strings.Contains(err.Error(), "waiting for token_file") {
		t.Fatalf("flush without a valid token: %v", err)
	}
	a := r.auth()
	r.publish(a.Token)
	r.waitActive(a.Token)
	r.drain(10 * time.Second)
	r.nothingLost()
}

// Configurations an operator gets wrong: each fails before anything is
// written, with the option's name in the error. A bad URL fails at Connect,
// as in the stock plugin, the rest at load or Init.
func TestProofBadConfigs(t *testing.T) {
	cases := []struct {
		name      string
		toml      string
		want      string
		atConnect bool
	}{
		{"token and token_file", `token = "x"` + "\n" + `token_file = "/tmp/t"`, `"token" and "token_file"`, false},
		{"neither", ``, "no token configured", false},
		{"bad URL", `token = "x"` + "\n" + `urls = ["http://[::1"]`, "urls", true},
		{"URL scheme", `token = "x"` + "\n" + `urls = ["ftp://influx:8086"]`, `unsupported scheme "ftp"`, true},
		{"unknown option", `token = "x"` + "\n" + `tokn_file = "/tmp/t"`, "tokn_file", false},
		{"negative probe_timeout", `token = "x"` + "\n" + `probe_timeout = "-1s"`, "probe_timeout", false},
		{"negative token_debounce", `token = "x"` + "\n" + `token_debounce = "-5s"`, "token_debounce", false},
		// The stock plugin accepts this: http.Client treats a negative
		// Timeout as none at all, so a hung server would hold a flush forever.
		{"negative timeout", `token = "x"` + "\n" + `timeout = "-5s"`, "timeout", false},
		{"bad probe", `token = "x"` + "\n" + `probe = "maybe"`, "probe", false},
		{"bad content_encoding", `token = "x"` + "\n" + `content_encoding = "br"`, "content_encoding", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.NewConfig()
			data := "[[outputs.influxdb_v2_rotating]]\n" + c.toml + "\n"
			err := cfg.LoadConfigData([]byte(data), config.EmptySourcePath)
			if err == nil {
				if len(cfg.Outputs) != 1 {
					t.Fatalf("%d outputs loaded", len(cfg.Outputs))
				}
				err = initOutput(cfg.Outputs[0])
				if c.atConnect {
					if err != nil {
						t.Fatalf("Init: %v; a bad URL fails at Connect, as in the stock plugin", err)
					}
					err = cfg.Outputs[0].Connect()
					cfg.Outputs[0].Close()
				}
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("config\n%s\ngave %v, want an error containing %q", data, err, c.want)
			}
		})
	}
}

func initOutput(ro *models.RunningOutput) error { return ro.Init() }

// Server answers that are not what a client expects: proxy HTML pages,
// truncated JSON, wrong content types. The message logged is readable
// (one line, cut short), the batch is kept for 5xx and dropped for 4xx, and a
// kept batch is stored once the server behaves.
func TestProofBadServerAnswers(t *testing.T) {
	html := "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
	cases := []struct {
		name  string
		fault influxv2.Fault
		kept  bool
		want  string
	}{
		{"HTML 502 from a proxy", influxv2.Fault{Status: 502}, true, "502 Bad Gateway"},
		{"HTML 500 page of 20 KiB", influxv2.Fault{Status: 500, Body: html + strings.Repeat("<p>filler</p>\n", 1500)}, true, "500 Internal Server Error"},
		{"truncated JSON 500", influxv2.Fault{Status: 500, Body: `{"code":"internal error","message":"unexpec`}, true, "unexpec"},
		{"truncated JSON 400", influxv2.Fault{Status: 400, Body: `{"code":"invalid","message":"partial write: unable to pa`}, false, "unable to pa"},
		{"plain text 503", influxv2.Fault{Status: 503, Body: "upstream connect error or disconnect/reset before headers"}, true, "upstream connect error"},
		{"HTML 401 from a login proxy", influxv2.Fault{Status: 401, Body: "<html>login required</html>"}, true, "401"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newProofRig(t, influxv2.Options{})
			a := r.auth()
			r.publish(a.Token)
			r.start("", func(p *InfluxDB) { p.Probe = ProbeNone })
			r.srv.Inject(c.fault)
			r.add(100)
			err := r.flush()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("flush: %v, want an error containing %q", err, c.want)
			}
			// A proxy's page may be quoted, but cut short and on one line.
			if msg := err.Error(); len(msg) > 1024 || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("error of %d bytes, or spanning lines: %q", len(msg), msg)
			}
			if kept := r.ro.BufferLength() == 100; kept != c.kept {
				t.Fatalf("%d of 100 metrics kept, want kept=%t", r.ro.BufferLength(), c.kept)
			}
			if !c.kept {
				return // the server refused the data itself; dropping it is the answer
			}
			r.p.retryAt.Store(0) // Retry-After is tested on its own
			r.drain(10 * time.Second)
			r.nothingLost()
		})
	}
}
