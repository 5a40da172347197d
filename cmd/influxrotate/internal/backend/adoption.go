package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/influxrotate/influxrotate/rotation"
)

// DefaultAdoptionLookback is how far back adoption reports are read: three
// of the writers' default 5-minute report intervals.
const DefaultAdoptionLookback = 15 * time.Minute

// AdoptionQuery says where the writers' adoption reports are (see
// rotation.AdoptionReporter) and how far back to read them.
type AdoptionQuery struct {
	// Bucket holds the reports: the writers' adoption_bucket. InfluxDB 2.x:
	// a bucket name of the operator token's organization (the v1
	// compatibility API maps every bucket to a database of its name, in
	// the organization of the token that asks); 1.x: "db" or "db/rp";
	// InfluxDB 3: a database.
	Bucket string
	// Measurement of the reports; default rotation.DefaultAdoptionMeasurement.
	Measurement string
	// Lookback: only reports newer than this count; default
	// DefaultAdoptionLookback. Rounded up to whole seconds.
	Lookback time.Duration
}

// Adoption is what one writer reported last within the lookback.
type Adoption struct {
	// ClientID is the writer's client_id tag.
	ClientID string
	// Fingerprint is the fingerprint of the token it writes with, from its
	// latest report; Previous the one that token replaced ("" if none).
	Fingerprint string
	Previous    string
	// Rotations is the writer's promotion count since it started.
	Rotations int64
	// LastReport is the time of the latest report.
	LastReport time.Time
	// FirstSeen is the time of the earliest report of Fingerprint in the
	// unbroken run of reports ending with the latest one. When the run
	// reaches back to the start of the lookback, the writer may have used
	// Fingerprint for longer.
	FirstSeen time.Time
}

// AdoptionReader reads adoption reports. V1, V2 and V3 implement it, with
// InfluxQL on /query, the one query API InfluxDB 1.x, 2.x and 3.x share.
type AdoptionReader interface {
	// Adoptions returns the latest report of every writer that reported
	// within the lookback, ordered by client ID. An error wrapping
	// ErrAdoptionAccess is a configuration error: no retry will fix it.
	Adoptions(ctx context.Context, q AdoptionQuery) ([]Adoption, error)
}

// ErrAdoptionAccess means the adoption reports cannot be read at all: the
// bucket does not exist or the operator token may not read it.
var ErrAdoptionAccess = errors.New("the operator token cannot read adoption reports there: " +
	"InfluxQL /query needs read permission on the bucket (InfluxDB 2.x reports a bucket it may not read as \"database not found\"; " +
	"InfluxDB 3 creates a database with its first write, so no writer has reported there yet)")

// AdoptionStatement is the InfluxQL statement that reads the reports: every
// report within the lookback, one series per client_id, oldest first.
// Reading every row rather than last() keeps each row's fields and time
// together (InfluxQL's selectors pick each field's last value separately)
// and gives the first report of the current fingerprint; at one report per
// writer per interval the answer stays small.
func AdoptionStatement(measurement string, lookback time.Duration) string {
	secs := int64((lookback + time.Second - 1) / time.Second)
	return fmt.Sprintf(`SELECT "fingerprint", "previous", "rotations" FROM %s WHERE time > now() - %ds GROUP BY "client_id"`,
		quoteIdent(measurement), secs)
}

func (q *AdoptionQuery) normalise() error {
	if q.Bucket == "" {
		return errors.New("adoption reports: no bucket given")
	}
	if q.Measurement == "" {
		q.Measurement = rotation.DefaultAdoptionMeasurement
	}
	if q.Lookback == 0 {
		q.Lookback = DefaultAdoptionLookback
	}
	if q.Lookback < 0 {
		return fmt.Errorf("adoption reports: lookback must be positive, got %s", q.Lookback)
	}
	return nil
}

// Adoptions implements AdoptionReader with the operator token.
func (v *V2) Adoptions(ctx context.Context, q AdoptionQuery) ([]Adoption, error) {
	if err := q.normalise(); err != nil {
		return nil, err
	}
	auth := "Token " + v.opts.OperatorToken
	return queryAdoptions(ctx, v.opts, v.base, q, url.Values{"db": {q.Bucket}},
		func(r *http.Request) { r.Header.Set("Authorization", auth) })
}

// Adoptions implements AdoptionReader with the operator token, on InfluxDB
// 3's v1-compatible /query: the same statement and answer as on 2.x, with
// the database as the bucket.
func (v *V3) Adoptions(ctx context.Context, q AdoptionQuery) ([]Adoption, error) {
	return v.api.Adoptions(ctx, q)
}

// Adoptions implements AdoptionReader with the operator user.
func (v *V1) Adoptions(ctx context.Context, q AdoptionQuery) ([]Adoption, error) {
	if err := q.normalise(); err != nil {
		return nil, err
	}
	params := url.Values{}
	db, rp, _ := strings.Cut(q.Bucket, "/")
	params.Set("db", db)
	if rp != "" {
		params.Set("rp", rp)
	}
	return queryAdoptions(ctx, v.opts, v.base, q, params,
		func(r *http.Request) { r.SetBasicAuth(v.user, v.pass) })
}

func queryAdoptions(ctx context.Context, opts Options, base string, q AdoptionQuery, params url.Values,
	auth func(*http.Request)) ([]Adoption, error) {
	op := fmt.Sprintf("read adoption reports from %q", q.Bucket)
	params.Set("q", AdoptionStatement(q.Measurement, q.Lookback))
	params.Set("epoch", "ns")
	var ans queryAnswer
	err := opts.Retry.Do(ctx, opts.Logger, op, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/query?"+params.Encode(), nil)
		if err != nil {
			return Permanent(fmt.Errorf("%s: %w", op, err))
		}
		auth(req)
		req.Header.Set("User-Agent", opts.UserAgent)
		req.Header.Set("Accept", "application/json")
		data, err := exchange(opts.Client, req, op, opts.Scrubber)
		if err != nil {
			return err
		}
		ans = queryAnswer{}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // nanosecond times do not fit a float64
		if err := dec.Decode(&ans); err != nil {
			return Permanent(fmt.Errorf("%s: decoding answer: %w", op, err))
		}
		return nil
	})
	switch {
	case err == nil:
	case accessDenied(err):
		// InfluxDB 3 answers a token without read on the database with 401
		// "unauthorized access", 2.x an inactive token with 403.
		return nil, fmt.Errorf("%s: %w (%v)", op, ErrAdoptionAccess, err)
	case noEndpoint(err):
		return nil, fmt.Errorf("%s: the server has no InfluxQL /query endpoint (%v)", op, err)
	default:
		return nil, err
	}
	msg := ans.Error
	if msg == "" && len(ans.Results) > 0 {
		msg = ans.Results[0].Error
	}
	if msg != "" {
		msg = opts.Scrubber.Scrub(msg)
		if strings.Contains(msg, "database not found") || strings.Contains(msg, "not authorized") ||
			strings.Contains(msg, "retention policy not found") || v3DatabaseNotFound.MatchString(msg) {
			return nil, fmt.Errorf("%s: %w (%s)", op, ErrAdoptionAccess, msg)
		}
		return nil, Permanent(fmt.Errorf("%s: %s", op, msg))
	}
	var out []Adoption
	for _, res := range ans.Results {
		for _, s := range res.Series {
			a, ok, err := adoptionOf(s.Tags["client_id"], s.Columns, s.Values)
			if err != nil {
				// The error quotes the server's columns and values, which an
				// echoing server can fill with the operator token.
				return nil, Permanent(fmt.Errorf("%s: %s", op, opts.Scrubber.Scrub(err.Error())))
			}
			if ok {
				out = append(out, a)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// v3DatabaseNotFound is InfluxDB 3's statement error for a database that
// does not exist (yet: the first write creates it).
var v3DatabaseNotFound = regexp.MustCompile(`^Database .+ not found$`)

// adoptionOf folds one client's rows into its Adoption; ok is false when no
// row carries a fingerprint.
func adoptionOf(client string, columns []string, values [][]any) (Adoption, bool, error) {
	col := map[string]int{}
	for i, c := range columns {
		col[c] = i
	}
	for _, c := range []string{"time", "fingerprint", "previous", "rotations"} {
		if _, ok := col[c]; !ok {
			return Adoption{}, false, fmt.Errorf("answer has no %q column (columns %v)", c, columns)
		}
	}
	type report struct {
		at        time.Time
		fp, prev  string
		rotations int64
	}
	reports := make([]report, 0, len(values))
	for _, row := range values {
		if len(row) != len(columns) {
			return Adoption{}, false, fmt.Errorf("row of %d values for %d columns", len(row), len(columns))
		}
		fp, _ := row[col["fingerprint"]].(string)
		if fp == "" {
			continue // a point of that measurement that is no report
		}
		at, err := qlTime(row[col["time"]])
		if err != nil {
			return Adoption{}, false, err
		}
		prev, _ := row[col["previous"]].(string)
		var rotations int64
		if n, ok := row[col["rotations"]].(json.Number); ok {
			rotations, _ = n.Int64()
		}
		reports = append(reports, report{at: at, fp: fp, prev: prev, rotations: rotations})
	}
	if len(reports) == 0 {
		return Adoption{}, false, nil
	}
	sort.SliceStable(reports, func(i, j int) bool { return reports[i].at.Before(reports[j].at) })
	last := reports[len(reports)-1]
	a := Adoption{ClientID: client, Fingerprint: last.fp, Previous: last.prev, Rotations: last.rotations,
		LastReport: last.at, FirstSeen: last.at}
	for i := len(reports) - 2; i >= 0 && reports[i].fp == last.fp; i-- {
		a.FirstSeen = reports[i].at
	}
	return a, true, nil
}

// qlTime reads a time column: an integer of nanoseconds (epoch=ns), or RFC
// 3339 from a server that ignored epoch.
func qlTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(t), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("time %q: %w", t, err)
		}
		return time.Unix(0, n).UTC(), nil
	case string:
		return time.Parse(time.RFC3339Nano, t)
	}
	return time.Time{}, fmt.Errorf("time column holds %T", v)
}

var (
	_ AdoptionReader = (*V2)(nil)
	_ AdoptionReader = (*V1)(nil)
	_ AdoptionReader = (*V3)(nil)
)
