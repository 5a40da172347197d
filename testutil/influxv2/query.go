package influxv2

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The v1 compatibility query endpoint, GET|POST /query?db=<bucket>&q=<InfluxQL>,
// answers the one statement the controller sends to read adoption reports, and
// nothing else: an unknown statement is a 400, so a test can never pass on an empty
// answer to a query the server did not understand.
//
//	SELECT "fingerprint", "previous", "rotations" FROM "<measurement>" WHERE time > now() - <n>s GROUP BY "client_id"
//
// db is a bucket name of the token's organization (2.x's virtual DBRP mapping;
// the test server's operator token, which has no organization, sees every
// organization's buckets). Like 2.x, an inactive token is a 403 "insufficient
// permissions", and a bucket the token may not read is reported as missing:
// HTTP 200 with the statement error "database not found: <db>".
var adoptionStatement = regexp.MustCompile(
	`^SELECT "fingerprint", "previous", "rotations" FROM "((?:[^"\\]|\\.)+)" WHERE time > now\(\) - ([1-9][0-9]{0,9})s GROUP BY "client_id"$`)

// parseAdoptionStatement reads the measurement and the lookback in seconds
// of the adoption statement; ok is false for any other statement.
func parseAdoptionStatement(q string) (measurement string, secs int64, ok bool) {
	m := adoptionStatement.FindStringSubmatch(q)
	if m == nil {
		return "", 0, false
	}
	secs, _ = strconv.ParseInt(m[2], 10, 64)
	return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(m[1]), secs, true
}

var adoptionColumns = []string{"fingerprint", "previous", "rotations"}

// qlSeries and qlResult are the 1.x JSON answer.
type qlSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

type qlResult struct {
	StatementID int        `json:"statement_id"`
	Series      []qlSeries `json:"series,omitempty"`
	Error       string     `json:"error,omitempty"`
}

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, c caller) {
	if !c.auth.active {
		writeError(w, &apiError{codeForbidden, "insufficient permissions"})
		return
	}
	q := strings.TrimSpace(r.FormValue("q"))
	measurement, secs, ok := parseAdoptionStatement(q)
	if !ok {
		writeError(w, &apiError{codeInvalid, fmt.Sprintf("influxv2 test server: unsupported InfluxQL statement %q", q)})
		return
	}
	format, ok := epochFormat(r.FormValue("epoch"))
	if !ok {
		writeError(w, &apiError{codeInvalid, fmt.Sprintf("influxv2 test server: unsupported epoch %q", r.FormValue("epoch"))})
		return
	}
	db := r.FormValue("db")
	if db == "" {
		writeQL(w, qlResult{Error: "database name required"})
		return
	}
	since := time.Now().Add(-time.Duration(secs) * time.Second)

	s.mu.Lock()
	b, o := s.readableBucketLocked(c, db)
	var pts []Point
	if b != nil {
		for _, p := range s.points {
			if p.Org == o.name && p.Bucket == b.name && p.Measurement == measurement && p.Time.After(since) {
				pts = append(pts, p)
			}
		}
	}
	s.mu.Unlock()
	if b == nil {
		writeQL(w, qlResult{Error: "database not found: " + db})
		return
	}
	writeQL(w, qlResult{Series: groupByClient(measurement, pts, format)})
}

// readableBucketLocked resolves db like the virtual DBRP mapping: a bucket of the
// token's org named db that the token may read.
func (s *Server) readableBucketLocked(c caller, db string) (*bucket, *org) {
	for _, b := range s.buckets {
		if b.name != db || (c.auth.orgID != "" && b.orgID != c.auth.orgID) {
			continue
		}
		if !c.auth.allowed(Permission{"read", Resource{Type: "buckets", ID: b.id, OrgID: b.orgID}}) {
			continue
		}
		return b, s.orgByIDLocked(b.orgID)
	}
	return nil, nil
}

// groupByClient makes one series per client_id, rows by time; points of one series
// at one timestamp are one row, later fields overwriting earlier ones, as InfluxDB
// stores them.
func groupByClient(measurement string, pts []Point, format func(time.Time) any) []qlSeries {
	type row struct {
		t      time.Time
		fields map[string]any
	}
	byClient := map[string]map[int64]*row{}
	for _, p := range pts {
		rows := byClient[p.Tags["client_id"]]
		if rows == nil {
			rows = map[int64]*row{}
			byClient[p.Tags["client_id"]] = rows
		}
		rw := rows[p.Time.UnixNano()]
		if rw == nil {
			rw = &row{t: p.Time, fields: map[string]any{}}
			rows[p.Time.UnixNano()] = rw
		}
		for k, v := range p.Fields {
			rw.fields[k] = v
		}
	}
	clients := make([]string, 0, len(byClient))
	for id := range byClient {
		clients = append(clients, id)
	}
	sort.Strings(clients)
	var out []qlSeries
	for _, id := range clients {
		rows := make([]*row, 0, len(byClient[id]))
		for _, rw := range byClient[id] {
			rows = append(rows, rw)
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].t.Before(rows[j].t) })
		ser := qlSeries{Name: measurement, Tags: map[string]string{"client_id": id},
			Columns: append([]string{"time"}, adoptionColumns...)}
		for _, rw := range rows {
			vals := []any{format(rw.t)}
			selected := false
			for _, col := range adoptionColumns {
				v, ok := rw.fields[col]
				selected = selected || ok
				vals = append(vals, v)
			}
			// A raw SELECT leaves out rows where every selected field is null.
			if selected {
				ser.Values = append(ser.Values, vals)
			}
		}
		if len(ser.Values) > 0 {
			out = append(out, ser)
		}
	}
	return out
}

// epochFormat is the time column's format for the epoch parameter: RFC 3339 without
// one, integers in the unit asked for.
func epochFormat(epoch string) (func(time.Time) any, bool) {
	unit := map[string]time.Duration{"ns": time.Nanosecond, "u": time.Microsecond, "µ": time.Microsecond,
		"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}
	if epoch == "" {
		return func(t time.Time) any { return t.UTC().Format(time.RFC3339Nano) }, true
	}
	d, ok := unit[epoch]
	if !ok {
		return nil, false
	}
	return func(t time.Time) any { return t.UnixNano() / int64(d) }, true
}

func writeQL(w http.ResponseWriter, res qlResult) {
	writeJSON(w, http.StatusOK, map[string]any{"results": []qlResult{res}})
}
