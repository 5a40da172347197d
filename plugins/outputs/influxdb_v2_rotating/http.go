package influxdb_v2_rotating

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/net/http2"

	"github.com/influxdata/telegraf/config"

	"github.com/influxrotate/influxrotate/rotation"
)

// maxErrorBody is how much of an error answer is read for Classify: enough
// for any InfluxDB error message, little enough for a proxy's HTML page.
const maxErrorBody = 4 << 10

// maxAuthRetries bounds how often one flush re-sends a refused batch with a
// new token, so a server that refuses every token cannot loop a flush.
const maxAuthRetries = 2

// httpWriter posts line protocol to one server. Its client and transport are
// configured once and shared by every request; only the Authorization header
// changes between requests.
type httpWriter struct {
	base            *url.URL   // the server's write endpoint, without query
	params          url.Values // the query of the configured URL, kept on every request as the stock plugin does
	org             string
	client          *http.Client
	transport       *http.Transport
	gzip            bool
	userAgent       string
	headers         map[string]*config.Secret
	scrub           *rotation.Scrubber
	writeURLs       sync.Map // bucket -> *url.URL
	consecutiveFail atomic.Int64
}

type writerConfig struct {
	url             string
	org             string
	localAddr       *net.TCPAddr
	proxy           *url.URL
	tls             *tls.Config
	timeout         time.Duration
	pingTimeout     time.Duration
	readIdleTimeout time.Duration
	gzip            bool
	userAgent       string
	headers         map[string]*config.Secret
	// scrub removes tokens from the server's messages; the Rotator fills it.
	scrub *rotation.Scrubber
}

func newHTTPWriter(cfg writerConfig) (*httpWriter, error) {
	u, err := url.Parse(cfg.url)
	if err != nil {
		return nil, fmt.Errorf("urls: error parsing url %q: %w", rotation.RedactURL(cfg.url), rotation.URLParseError(err))
	}
	proxy := http.ProxyFromEnvironment
	if cfg.proxy != nil {
		proxy = http.ProxyURL(cfg.proxy)
	}
	var transport *http.Transport
	base := *u
	switch u.Scheme {
	case "http", "https":
		dialer := &net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}
		if cfg.localAddr != nil {
			// Not a typed nil in the interface, which errors print as "<nil>->".
			dialer.LocalAddr = cfg.localAddr
		}
		transport = &http.Transport{
			Proxy:               proxy,
			TLSClientConfig:     cfg.tls,
			DialContext:         dialer.DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
		if cfg.readIdleTimeout != 0 || cfg.pingTimeout != 0 {
			if h2, err := http2.ConfigureTransports(transport); err == nil {
				h2.ReadIdleTimeout = cfg.readIdleTimeout
				h2.PingTimeout = cfg.pingTimeout
			}
		}
		base.Path = path.Join(u.Path, "/api/v2/write")
	case "unix":
		sock := u.Path
		transport = &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
		}
		base = url.URL{Scheme: "http", Host: "127.0.0.1", Path: "/api/v2/write"}
	default:
		return nil, fmt.Errorf("urls: unsupported scheme %q in %q", u.Scheme, rotation.RedactURL(cfg.url))
	}
	base.RawQuery = ""
	return &httpWriter{
		base:   &base,
		params: u.Query(),
		org:    cfg.org,
		// InfluxDB never redirects a write: a redirect would only carry
		// the token somewhere else.
		client:    &http.Client{Timeout: cfg.timeout, Transport: transport, CheckRedirect: rotation.NoRedirect},
		transport: transport,
		gzip:      cfg.gzip,
		userAgent: cfg.userAgent,
		headers:   cfg.headers,
		scrub:     cfg.scrub,
	}, nil
}

// String names the server for log lines as the stock plugin does: its
// write endpoint.
func (w *httpWriter) String() string { return w.base.String() }

func (w *httpWriter) writeURL(bucket string) *url.URL {
	if u, ok := w.writeURLs.Load(bucket); ok {
		return u.(*url.URL)
	}
	u := *w.base
	q := maps.Clone(w.params)
	if q == nil {
		q = url.Values{}
	}
	q.Set("org", w.org)
	q.Set("bucket", bucket)
	u.RawQuery = q.Encode()
	w.writeURLs.Store(bucket, &u)
	return &u
}

type gzipState struct {
	w   *gzip.Writer
	out bytes.Buffer
}

// gzip.BestSpeed: on line protocol it compresses within a few percent of
// the default level at several times the speed, and a flush is CPU-bound
// on compression.
var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return &gzipState{w: w}
}}

// sentBody is a request body that reports when the transport is done with
// it. The transport may still read a body after Do returns (the server can
// answer 401 or 413 before reading it all), so the buffers behind it go back
// to their pools only after Close.
type sentBody struct {
	bytes.Reader
	closed chan struct{}
	once   sync.Once
}

func (b *sentBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}

// bodyReleaseWait bounds the wait for the transport to close a body; past
// it the buffers are left to the garbage collector instead of the pools.
const bodyReleaseWait = 5 * time.Second

// post sends one request. It returns the server's decision, or an error
// when no answer arrived (connection refused, timeout, TLS failure).
// reusable is false when the transport may still hold body, which then must
// not be reused.
func (w *httpWriter) post(ctx context.Context, bucket string, body []byte, cred *rotation.Credential) (d rotation.Decision, reusable bool, err error) {
	payload := body
	var gz *gzipState
	if w.gzip {
		gz = gzipPool.Get().(*gzipState)
		gz.out.Reset()
		gz.w.Reset(&gz.out)
		if _, err := gz.w.Write(body); err != nil {
			return rotation.Decision{}, true, fmt.Errorf("gzip: %w", err)
		}
		if err := gz.w.Close(); err != nil {
			return rotation.Decision{}, true, fmt.Errorf("gzip: %w", err)
		}
		payload = gz.out.Bytes()
	}

	sent := &sentBody{closed: make(chan struct{})}
	sent.Reset(payload)
	var replayed atomic.Bool
	defer func() {
		reusable = !replayed.Load() && waitClosed(sent.closed)
		if gz != nil && reusable {
			gzipPool.Put(gz)
		}
	}()

	req, err := w.request(bucket, cred, w.gzip)
	if err != nil {
		_ = sent.Close()
		return rotation.Decision{}, true, err
	}
	req.Body = sent
	req.ContentLength = int64(len(payload))
	req.GetBody = func() (io.ReadCloser, error) {
		// An HTTP/2 retry: this copy is not tracked.
		replayed.Store(true)
		return io.NopCloser(bytes.NewReader(payload)), nil
	}
	resp, err := w.client.Do(req.WithContext(ctx))
	if err != nil {
		// A broken connection may sit in the pool; start afresh next time.
		w.transport.CloseIdleConnections()
		return rotation.Decision{}, false, &transportError{err}
	}
	defer resp.Body.Close()
	var errBody []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		errBody, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	// Drain so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	d = w.scrub.Classify(resp.StatusCode, resp.Header, errBody)
	if xe := resp.Header.Get("X-Influx-Error"); xe != "" && d.Action != rotation.ActionAccept {
		if d.Message == "" {
			d.Message = w.scrub.ServerMessage([]byte(xe))
		} else {
			d.Message += "; " + w.scrub.ServerMessage([]byte(xe))
		}
	}
	return d, false, nil
}

// request builds a write request to bucket, without body or context, the
// one way every request to this server is built: the write URL with the
// configured query, the credential, User-Agent and http_headers. Probes go
// through it too, so a probe carries exactly what a write carries.
func (w *httpWriter) request(bucket string, cred *rotation.Credential, gzipped bool) (*http.Request, error) {
	u := w.writeURL(bucket)
	header := make(http.Header, 6)
	header["Authorization"] = []string{cred.AuthorizationHeader()}
	header["Content-Type"] = []string{"text/plain; charset=utf-8"}
	if gzipped {
		header["Content-Encoding"] = []string{"gzip"}
	}
	header["User-Agent"] = []string{w.userAgent}
	req := &http.Request{
		Method:     http.MethodPost,
		URL:        u,
		Host:       u.Host,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     header,
	}
	if err := w.addHeaders(req); err != nil {
		return nil, err
	}
	return req, nil
}

// probeRequest is the rotation.ProberConfig.NewRequest of this writer: a
// write request with an uncompressed body. The writer has one org, which
// every probe target of the plugin shares.
func (w *httpWriter) probeRequest(ctx context.Context, t rotation.Target, body []byte, cred *rotation.Credential) (*http.Request, error) {
	req, err := w.request(t.Bucket, cred, false)
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	req.Body = http.NoBody
	if len(body) > 0 {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return req.WithContext(ctx), nil
}

func waitClosed(closed <-chan struct{}) bool {
	select {
	case <-closed:
		return true
	default:
	}
	t := time.NewTimer(bodyReleaseWait)
	defer t.Stop()
	select {
	case <-closed:
		return true
	case <-t.C:
		return false
	}
}

// addHeaders applies http_headers, read from their secrets on every request
// as the stock plugin does so that dynamic secret stores work.
func (w *httpWriter) addHeaders(req *http.Request) error {
	for name, value := range w.headers {
		secret, err := value.Get()
		if err != nil {
			return fmt.Errorf("http_headers: %q: %w", name, err)
		}
		v := secret.String()
		secret.Destroy()
		switch {
		case strings.EqualFold(name, "host"):
			req.Host = v
		case strings.EqualFold(name, "authorization"):
			// A credential set by hand replaces the token: a server that
			// echoes it must find it scrubbed as a token would be.
			w.scrub.AddAuthorization(v)
			req.Header.Set(name, v)
		default:
			req.Header.Set(name, v)
		}
	}
	return nil
}

func (w *httpWriter) close() { w.transport.CloseIdleConnections() }

// transportError is a request that got no answer (as opposed to one that
// could not be built), for write_transport_errors. It reads as the error it
// wraps.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }
