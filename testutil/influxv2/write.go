package influxv2

import (
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// Point is one accepted point and the authorization that wrote it.
type Point struct {
	Org, Bucket string // names
	Measurement string
	Tags        map[string]string
	Fields      map[string]any
	Time        time.Time
	AuthID      string
	// Line is the canonical series and timestamp, "measurement,k=v,… <unix ns>",
	// tags sorted: the identity InfluxDB overwrites on, so tests can check that each
	// point arrived exactly once.
	Line string
}

// Points returns the accepted points, oldest first.
func (s *Server) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Point(nil), s.points...)
}

// WaitPoints waits until at least n points have been accepted and returns them, or
// returns ctx's error with the points accepted so far. It lets end-to-end tests wait
// for an asynchronous writer without sleeping.
func (s *Server) WaitPoints(ctx context.Context, n int) ([]Point, error) {
	for {
		s.mu.Lock()
		pts, stored := append([]Point(nil), s.points...), s.stored
		s.mu.Unlock()
		if len(pts) >= n {
			return pts, nil
		}
		select {
		case <-stored:
		case <-ctx.Done():
			return pts, fmt.Errorf("influxv2: %d of %d points arrived: %w", len(pts), n, ctx.Err())
		}
	}
}

// PointsBy returns the accepted points written by one authorization.
func (s *Server) PointsBy(authID string) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Point
	for _, p := range s.points {
		if p.AuthID == authID {
			out = append(out, p)
		}
	}
	return out
}

var precisions = map[string]lineprotocol.Precision{
	"ns": lineprotocol.Nanosecond, "us": lineprotocol.Microsecond,
	"ms": lineprotocol.Millisecond, "s": lineprotocol.Second,
}

// handleWrite follows the order of checks of 2.x http/write_handler.go (see
// influxdb-api.md): auth (done by the middleware), precision, bucket present, gzip
// header, org, bucket exists, write permission, body (size, gzip stream), line
// protocol, store.
func (s *Server) handleWrite(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()

	precName := q.Get("precision")
	precName = cmp.Or(precName, "ns")
	prec, ok := precisions[precName]
	if !ok {
		writeError(w, &apiError{codeInvalid, "invalid precision; valid precision units are ns, us, ms, and s"})
		return
	}

	bucketRef := q.Get("bucket")
	if bucketRef == "" {
		writeError(w, &apiError{codeNotFound, "bucket not found"})
		return
	}

	// 2.x opens the gzip reader while decoding the request, before the org lookup, and
	// returns its error unwrapped: a body that is not gzip, or an empty body sent with
	// Content-Encoding: gzip, is a 500 there, before any org, bucket or permission check.
	body := io.Reader(r.Body)
	switch r.Header.Get("Content-Encoding") {
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeError(w, errInternal)
			return
		}
		defer zr.Close()
		body = zr
	}

	s.mu.Lock()
	o, b, err := s.findOrgBucketLocked(q.Get("orgID"), q.Get("org"), bucketRef)
	var permErr *apiError
	if err == nil {
		permErr = checkBucketWrite(c.auth, o.id, b.id)
	}
	authID := c.auth.id
	s.mu.Unlock()
	if err != nil {
		writeError(w, err)
		return
	}
	if permErr != nil {
		writeError(w, permErr)
		return
	}

	data, err := s.readWriteBody(body)
	if err != nil {
		writeError(w, err)
		return
	}

	points, err := parseLines(data, prec, time.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	for i := range points {
		points[i].Org, points[i].Bucket, points[i].AuthID = o.name, b.name, authID
	}
	s.mu.Lock()
	dropped, reason := s.storeLocked(b.id, points)
	s.mu.Unlock()
	if dropped > 0 {
		writeError(w, &apiError{"unprocessable entity", fmt.Sprintf(
			"failure writing points to database: partial write: %s dropped=%d", reason, dropped)})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// storeLocked stores the points a 2.x storage engine would keep: a point with a field
// whose type differs from the type the bucket already has for that measurement and
// field (or from an earlier point of the batch) is dropped, the others are stored.
func (s *Server) storeLocked(bucketID string, points []Point) (dropped int, reason string) {
	if s.fieldTypes == nil {
		s.fieldTypes = map[string]string{}
	}
	for _, p := range points {
		conflict := ""
		keys := make([]string, 0, len(p.Fields))
		for k := range p.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys) // the first conflict by name is reported, every run the same
		for _, k := range keys {
			v := p.Fields[k]
			key := bucketID + "\x00" + p.Measurement + "\x00" + k
			if have, ok := s.fieldTypes[key]; ok && have != fieldType(v) {
				conflict = fmt.Sprintf("field type conflict: input field %q on measurement %q is type %s, already exists as type %s",
					k, p.Measurement, fieldType(v), have)
				break
			}
		}
		if conflict != "" {
			if dropped == 0 {
				reason = conflict
			}
			dropped++
			continue
		}
		for k, v := range p.Fields {
			s.fieldTypes[bucketID+"\x00"+p.Measurement+"\x00"+k] = fieldType(v)
		}
		s.points = append(s.points, p)
	}
	if len(points) > dropped {
		close(s.stored)
		s.stored = make(chan struct{})
	}
	return dropped, reason
}

func fieldType(v any) string {
	switch v.(type) {
	case float64:
		return "float"
	case int64:
		return "integer"
	case uint64:
		return "unsigned"
	case bool:
		return "boolean"
	}
	return "string"
}

// findOrgBucketLocked resolves org then bucket like 2.x: orgID wins over org; an org
// that is a valid ID is looked up as an ID only; the bucket is tried as an ID, then by
// name. The contract says an unknown org is 400; the 2.x code answers 404, and we
// follow the code.
func (s *Server) findOrgBucketLocked(orgID, orgName, bucketRef string) (*org, *bucket, error) {
	var o *org
	switch {
	case orgID != "":
		if err := validID(orgID); err != nil {
			return nil, nil, err
		}
		if o = s.orgByIDLocked(orgID); o == nil {
			return nil, nil, &apiError{codeNotFound, "organization not found"}
		}
	case orgName != "":
		if validID(orgName) == nil {
			if o = s.orgByIDLocked(orgName); o == nil {
				return nil, nil, &apiError{codeNotFound, "organization not found"}
			}
		} else {
			var notFound *apiError
			if o, notFound = s.orgNamedLocked(orgName); notFound != nil {
				return nil, nil, notFound
			}
		}
	default:
		return nil, nil, &apiError{codeInvalid, "Please provide either orgID or org"}
	}

	if validID(bucketRef) == nil {
		if b := s.bucketByIDLocked(bucketRef); b != nil && b.orgID == o.id {
			return o, b, nil
		}
	}
	for _, b := range s.buckets {
		if b.orgID == o.id && b.name == bucketRef {
			return o, b, nil
		}
	}
	return nil, nil, &apiError{codeNotFound, fmt.Sprintf("bucket %q not found", bucketRef)}
}

// checkBucketWrite is 2.x checkBucketWritePermissions: 403, and the permission set
// error of an inactive token appended to the message.
func checkBucketWrite(a *authorization, orgID, bucketID string) *apiError {
	const msg = "insufficient permissions for write"
	if !a.active {
		return &apiError{codeForbidden, msg + ": token is inactive"}
	}
	p := Permission{Action: "write", Resource: Resource{Type: "buckets", ID: bucketID, OrgID: orgID}}
	if !a.allowed(p) {
		return &apiError{codeForbidden, msg}
	}
	return nil
}

// readWriteBody reads the (gunzipped) body within MaxBodySize, with the errors of
// 2.x points.Parser: 413 when too large, 400 for a bad gzip header or checksum, 500
// for anything else, all prefixed "unable to read data: ".
func (s *Server) readWriteBody(body io.Reader) ([]byte, error) {
	return readLimited(body, s.opts.MaxBodySize)
}

// readLimited reads body, 413 when it is larger than limit (no limit when limit <= 0).
func readLimited(body io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		b, err := io.ReadAll(body)
		if err != nil {
			return nil, readErr(err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, readErr(err)
	}
	if int64(len(b)) > limit {
		return nil, &apiError{codeTooLarge, "unable to read data: points batch is too large"}
	}
	return b, nil
}

func readErr(err error) error {
	code := codeInternal
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) {
		code = codeInvalid
	}
	return &apiError{code, "unable to read data: " + err.Error()}
}

// parseLines parses the whole batch; any bad line rejects all of it with one
// "unable to parse '<line>': <reason>" per bad line joined by "\n", as 2.x does.
func parseLines(body []byte, prec lineprotocol.Precision, now time.Time) ([]Point, error) {
	lines := strings.Split(string(body), "\n")
	dec := lineprotocol.NewDecoderWithBytes(body)
	var points []Point
	var bad []string
	badLine := func(err error) {
		var de *lineprotocol.DecodeError
		line, reason := "", err.Error()
		if errors.As(err, &de) {
			reason = de.Err.Error()
			if de.Line >= 1 && de.Line <= int64(len(lines)) {
				line = strings.TrimRight(lines[de.Line-1], "\r")
			}
		}
		bad = append(bad, fmt.Sprintf("unable to parse '%s': %s", line, reason))
	}
	for i := 0; dec.Next(); i++ {
		p, err := decodePoint(dec, prec, now)
		if err != nil {
			badLine(err)
			continue
		}
		points = append(points, p)
	}
	if len(bad) > 0 {
		return nil, &apiError{codeInvalid, strings.Join(bad, "\n")}
	}
	return points, nil
}

func decodePoint(dec *lineprotocol.Decoder, prec lineprotocol.Precision, now time.Time) (Point, error) {
	m, err := dec.Measurement()
	if err != nil {
		return Point{}, err
	}
	p := Point{Measurement: string(m), Tags: map[string]string{}, Fields: map[string]any{}}
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return Point{}, err
		}
		if k == nil {
			break
		}
		p.Tags[string(k)] = string(v)
	}
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return Point{}, err
		}
		if k == nil {
			break
		}
		p.Fields[string(k)] = v.Interface()
	}
	t, err := dec.Time(prec, now)
	if err != nil {
		return Point{}, err
	}
	p.Time = t.UTC()
	p.Line = seriesKey(p.Measurement, p.Tags) + " " + strconv.FormatInt(t.UnixNano(), 10)
	return p, nil
}

func seriesKey(measurement string, tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	sb.WriteString(measurement)
	for _, k := range keys {
		sb.WriteString("," + k + "=" + tags[k])
	}
	return sb.String()
}
