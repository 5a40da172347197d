package influxv2

import (
	"net/http"
	"time"
)

type orgResponse struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Links       map[string]string `json:"links"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
}

type bucketResponse struct {
	ID             string            `json:"id"`
	OrgID          string            `json:"orgID"`
	Type           string            `json:"type"`
	Name           string            `json:"name"`
	RetentionRules []any             `json:"retentionRules"`
	Labels         []any             `json:"labels"`
	Links          map[string]string `json:"links"`
	CreatedAt      time.Time         `json:"createdAt"`
	UpdatedAt      time.Time         `json:"updatedAt"`
}

// handleListOrgs answers GET /api/v2/orgs[?org=|orgID=]: an unknown name is 404, orgs
// the caller cannot read are dropped.
func (s *Server) handleListOrgs(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	var candidates []*org
	switch {
	case q.Get("orgID") != "":
		if err := validID(q.Get("orgID")); err != nil {
			writeError(w, err)
			return
		}
		o := s.orgByIDLocked(q.Get("orgID"))
		if o == nil {
			writeError(w, &apiError{codeNotFound, "organization not found"})
			return
		}
		candidates = []*org{o}
	case q.Get("org") != "":
		o, err := s.orgNamedLocked(q.Get("org"))
		if err != nil {
			writeError(w, err)
			return
		}
		candidates = []*org{o}
	default:
		candidates = s.orgs
	}
	list := make([]orgResponse, 0, len(candidates))
	for _, o := range candidates {
		if c.authorize(Permission{"read", Resource{Type: "orgs", ID: o.id}}) != nil {
			continue
		}
		list = append(list, orgResponse{
			ID: o.id, Name: o.name,
			Links: map[string]string{
				"self": "/api/v2/orgs/" + o.id, "buckets": "/api/v2/buckets?org=" + o.name,
				"members": "/api/v2/orgs/" + o.id + "/members", "owners": "/api/v2/orgs/" + o.id + "/owners",
			},
			CreatedAt: o.created, UpdatedAt: o.created,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"links": map[string]string{"self": "/api/v2/orgs"},
		"orgs":  list,
	})
}

// handleListBuckets answers GET /api/v2/buckets[?name=&org=|orgID=&id=]: an unknown
// org is 404, buckets the caller cannot read are dropped.
func (s *Server) handleListBuckets(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	for _, k := range []string{"orgID", "id"} {
		if v := q.Get(k); v != "" {
			if err := validID(v); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	orgID := q.Get("orgID")
	if orgID == "" && q.Get("org") != "" {
		o, err := s.orgNamedLocked(q.Get("org"))
		if err != nil {
			writeError(w, err)
			return
		}
		orgID = o.id
	}
	list := make([]bucketResponse, 0, len(s.buckets))
	for _, b := range s.buckets {
		if (orgID != "" && b.orgID != orgID) || (q.Get("name") != "" && b.name != q.Get("name")) ||
			(q.Get("id") != "" && b.id != q.Get("id")) {
			continue
		}
		if c.authorize(Permission{"read", Resource{Type: "buckets", ID: b.id, OrgID: b.orgID}}) != nil {
			continue
		}
		list = append(list, bucketResponse{
			ID: b.id, OrgID: b.orgID, Type: "user", Name: b.name,
			RetentionRules: []any{}, Labels: []any{},
			Links: map[string]string{
				"self": "/api/v2/buckets/" + b.id, "org": "/api/v2/orgs/" + b.orgID,
				"write": "/api/v2/write?org=" + b.orgID + "&bucket=" + b.id,
			},
			CreatedAt: b.created, UpdatedAt: b.created,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"links":   map[string]string{"self": "/api/v2/buckets"},
		"buckets": list,
	})
}
