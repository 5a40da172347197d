package influxv2

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// contractYAML is the official InfluxDB OSS v2 OpenAPI contract (MIT, see
// openapi/LICENSE), embedded so the repository checks requests without network access.
//
//go:embed openapi/influxdb-oss-v2.yml
var contractYAML []byte

// Contract checks requests against the InfluxDB OSS v2 OpenAPI contract.
type Contract struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce sync.Once
	contract     *Contract
	contractErr  error
)

// LoadContract parses the embedded contract once per process (it takes a while) and
// returns the shared, read-only Contract.
func LoadContract() (*Contract, error) {
	contractOnce.Do(func() {
		contract, contractErr = loadContract()
	})
	return contract, contractErr
}

func loadContract() (*Contract, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(contractYAML)
	if err != nil {
		return nil, fmt.Errorf("influxv2: load openapi/influxdb-oss-v2.yml: %w", err)
	}
	// One example (LogEvent's date-time) and one default (GET /tasks "type": "") in the
	// contract do not match their own schemas; they document, they are not what we check.
	if err := doc.Validate(context.Background(), openapi3.DisableExamplesValidation(),
		openapi3.DisableSchemaDefaultsValidation()); err != nil {
		return nil, fmt.Errorf("influxv2: validate openapi/influxdb-oss-v2.yml: %w", err)
	}
	// /ping, /health and a few others declare their own server ('', not /api/v2) on
	// each operation; the gorillamux router only reads servers of the document and of
	// path items, so those are lifted to their path item.
	for _, item := range doc.Paths.Map() {
		if len(item.Servers) > 0 {
			continue
		}
		for _, op := range item.Operations() {
			if op.Servers != nil && len(*op.Servers) > 0 {
				item.Servers = *op.Servers
				break
			}
		}
	}
	// The contract inherits the global Token security on /ping, /health and /ready,
	// but 2.x serves them without authentication (influxdb-api.md); the code wins.
	for _, p := range []string{"/ping", "/health", "/ready"} {
		if item := doc.Paths.Value(p); item != nil {
			for _, op := range item.Operations() {
				op.Security = openapi3.NewSecurityRequirements()
			}
		}
	}
	// The contract marks the write's `org` required, but 2.x takes `orgID` alone
	// ("Please provide either orgID or org"); the code wins.
	if item := doc.Paths.Value("/write"); item != nil && item.Post != nil {
		for _, ref := range item.Post.Parameters {
			if p := ref.Value; p != nil && p.In == "query" && p.Name == "org" {
				p.Required = false
			}
		}
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("influxv2: route openapi/influxdb-oss-v2.yml: %w", err)
	}
	return &Contract{doc: doc, router: router}, nil
}

// authenticate accepts the schemes 2.x accepts: "Token <t>" and "Bearer <t>" (scheme
// case-insensitive; the contract calls Token case-sensitive but the code is not), and
// Basic for the schemes that name it. Whether the token is valid is the server's job.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	switch in.SecurityScheme.Type {
	case "http":
		if strings.EqualFold(in.SecurityScheme.Scheme, "basic") {
			if scheme, _, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Basic") {
				return nil
			}
			return errors.New("no Basic authorization")
		}
	case "apiKey":
		if _, ok := tokenFromHeader(h); ok {
			return nil
		}
		return errors.New(`Authorization is not "Token <token>" or "Bearer <token>"`)
	}
	return fmt.Errorf("security scheme %s not used by this project", in.SecuritySchemeName)
}

// Validate checks one request, whose body has been read into body, against the
// contract. The write body is not checked: the contract types it as required base64
// (`format: byte`) while 2.x takes raw line protocol and answers 204 to an empty body.
func (c *Contract) Validate(r *http.Request, body []byte) error {
	// The contract's routes are relative to its server "/api/v2" except /ping and
	// /health, which declare their own empty server; the router needs a host to match
	// on, so the request is validated as a copy with its URL made absolute.
	rq := r.Clone(r.Context())
	u := *r.URL
	u.Host = cmp.Or(u.Host, r.Host)
	u.Scheme = cmp.Or(u.Scheme, "http")
	rq.URL = &u
	rq.Body = http.NoBody
	if len(body) > 0 {
		rq.Body = readCloser(body)
		rq.ContentLength = int64(len(body))
	}
	route, params, err := c.router.FindRoute(rq)
	if err != nil {
		return fmt.Errorf("contract: %s %s: %w", r.Method, r.URL.Path, err)
	}
	opts := &openapi3filter.Options{
		AuthenticationFunc: authenticate,
		MultiError:         true,
		ExcludeRequestBody: r.URL.Path == "/api/v2/write",
	}
	in := &openapi3filter.RequestValidationInput{Request: rq, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
		return fmt.Errorf("contract: %s %s: %w", r.Method, r.URL.Path, err)
	}
	return nil
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
