package influxdb_v2_rotating

import (
	"context"
	"errors"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// newProber returns a prober that sends through w: its client (transport,
// proxy, local address, TLS, unix socket, redirect policy) and its request
// builder (URL query, User-Agent, http_headers), so that a token the probe
// accepts is one the writes will get through with.
func (p *InfluxDB) newProber(w *httpWriter, mode rotation.ProbeMode) (*rotation.HTTPProber, error) {
	return rotation.NewHTTPProber(rotation.ProberConfig{
		Targets:     []rotation.Target{{Org: p.Organization, Bucket: p.ProbeBucket}},
		Mode:        mode,
		ProbeBucket: p.ProbeBucket,
		ProbeOrg:    p.Organization,
		Client:      w.client,
		Timeout:     time.Duration(p.ProbeTimeout),
		NewRequest:  w.probeRequest,
		Scrubber:    w.scrub,
	})
}

// probeMode is the rotation.ProbeMode of the probe option.
func (p *InfluxDB) probeMode() rotation.ProbeMode {
	switch p.Probe {
	case ProbePoint:
		return rotation.ProbePoint
	case ProbeNone:
		return rotation.ProbeNone
	}
	return rotation.ProbeEmptyWrite
}

// CheckResult is what Check learned at one of the urls.
type CheckResult struct {
	// URL is the configured URL with any password masked.
	URL string
	rotation.ProbeResult
}

// Check probes the token in use at every URL through the writers
// themselves, so that its verdict holds for the writes: same transport,
// proxy, local address, TLS settings, unix socket, URL query, headers and
// redirect policy. With probe = "none" it still probes, with an empty
// write. It fails when the plugin is not connected or has no valid token.
func (p *InfluxDB) Check(ctx context.Context) (*rotation.Credential, []CheckResult, error) {
	if p.rotator == nil {
		return nil, nil, errors.New("not connected: the plugin did not start its token rotation")
	}
	cred := p.rotator.Current()
	if cred == nil {
		return nil, nil, p.noToken()
	}
	mode := p.probeMode()
	if mode == rotation.ProbeNone {
		mode = rotation.ProbeEmptyWrite
	}
	if p.ProbeBucket == "" {
		return cred, nil, errors.New("no bucket to check the token against: bucket_tag alone names none; set probe_bucket")
	}
	results := make([]CheckResult, 0, len(p.writers))
	for i, w := range p.writers {
		prober, err := p.newProber(w, mode)
		if err != nil {
			return cred, results, err
		}
		results = append(results, CheckResult{URL: rotation.RedactURL(p.URLs[i]), ProbeResult: prober.Probe(ctx, cred)})
	}
	return cred, results, nil
}
