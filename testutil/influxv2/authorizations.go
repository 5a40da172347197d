package influxv2

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// authResponse is the 2.x authResponse of authorization/http_server.go.
type authResponse struct {
	ID          string            `json:"id"`
	Token       string            `json:"token"`
	Status      string            `json:"status"`
	Description string            `json:"description"`
	OrgID       string            `json:"orgID"`
	Org         string            `json:"org"`
	UserID      string            `json:"userID"`
	User        string            `json:"user"`
	Permissions []Permission      `json:"permissions"`
	Links       map[string]string `json:"links"`
	CreatedAt   time.Time         `json:"createdAt"`
	UpdatedAt   time.Time         `json:"updatedAt"`
}

// wireID decodes like 2.x platform.ID, so a malformed ID in a body is a JSON error.
type wireID string

func (id *wireID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if err := validID(s); err != nil {
		return err
	}
	*id = wireID(s)
	return nil
}

type wirePermission struct {
	Action   string `json:"action"`
	Resource struct {
		Type  string  `json:"type"`
		ID    *wireID `json:"id,omitempty"`
		OrgID *wireID `json:"orgID,omitempty"`
	} `json:"resource"`
}

type postAuthorizationRequest struct {
	Status      string           `json:"status"`
	OrgID       wireID           `json:"orgID"`
	UserID      *wireID          `json:"userID,omitempty"`
	Description string           `json:"description"`
	Permissions []wirePermission `json:"permissions"`
}

// validate is 2.x postAuthorizationRequest.Validate, in its order.
func (p *postAuthorizationRequest) validate() ([]Permission, *apiError) {
	if len(p.Permissions) == 0 {
		return nil, &apiError{codeInvalid, "authorization must include permissions"}
	}
	perms := make([]Permission, 0, len(p.Permissions))
	for _, wp := range p.Permissions {
		if !validResourceType(wp.Resource.Type) {
			return nil, &apiError{codeInvalid, "invalid resource type for permission"}
		}
		if wp.Action != "read" && wp.Action != "write" {
			return nil, &apiError{codeInvalid, "invalid action type for permission"}
		}
		perm := Permission{Action: wp.Action, Resource: Resource{Type: wp.Resource.Type}}
		if wp.Resource.ID != nil {
			perm.Resource.ID = string(*wp.Resource.ID)
		}
		if wp.Resource.OrgID != nil {
			perm.Resource.OrgID = string(*wp.Resource.OrgID)
		}
		perms = append(perms, perm)
	}
	if p.OrgID == "" {
		return nil, &apiError{codeInvalid, "org id required"}
	}
	p.Status = cmp.Or(p.Status, "active")
	if p.Status != "active" && p.Status != "inactive" {
		return nil, &apiError{codeInvalid, "invalid status: must be active or inactive"}
	}
	return perms, nil
}

func (s *Server) responseLocked(a *authorization, withToken bool) authResponse {
	res := authResponse{
		ID: a.id, Status: a.status(), Description: a.description,
		OrgID: a.orgID, UserID: a.userID,
		Links: map[string]string{
			"self": "/api/v2/authorizations/" + a.id,
			"user": "/api/v2/users/" + a.userID,
		},
		CreatedAt: a.created, UpdatedAt: a.updated,
		Permissions: make([]Permission, 0, len(a.perms)),
	}
	if withToken || !s.opts.HashedTokens {
		res.Token = a.token
	}
	if o := s.orgByIDLocked(a.orgID); o != nil {
		res.Org = o.name
	}
	if u := s.userByIDLocked(a.userID); u != nil {
		res.User = u.name
	}
	for _, p := range a.perms {
		if p.Resource.ID != "" {
			switch p.Resource.Type {
			case "buckets":
				if b := s.bucketByIDLocked(p.Resource.ID); b != nil {
					p.Resource.Name = b.name
				}
			case "orgs":
				if o := s.orgByIDLocked(p.Resource.ID); o != nil {
					p.Resource.Name = o.name
				}
			case "users":
				if u := s.userByIDLocked(p.Resource.ID); u != nil {
					p.Resource.Name = u.name
				}
			}
		}
		if p.Resource.OrgID != "" {
			if o := s.orgByIDLocked(p.Resource.OrgID); o != nil {
				p.Resource.Org = o.name
			}
		}
		res.Permissions = append(res.Permissions, p)
	}
	return res
}

// handlePostAuthorization follows 2.x: decode and validate (400), then the authorizer
// (401 for the org's authorizations and the user, 403 for escalation), then the
// service (400 for a permission of another org, unknown org or user).
func (s *Server) handlePostAuthorization(w http.ResponseWriter, r *http.Request, c caller) {
	var req postAuthorizationRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, &apiError{codeInvalid, "invalid json structure: " + err.Error()})
		return
	}
	perms, aerr := req.validate()
	if aerr != nil {
		writeError(w, aerr)
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	userID := c.auth.userID
	if req.UserID != nil {
		userID = string(*req.UserID)
	}
	orgID := string(req.OrgID)
	if e := c.authorize(Permission{"write", Resource{Type: "authorizations", OrgID: orgID}}); e != nil {
		writeError(w, e)
		return
	}
	if e := c.authorize(Permission{"write", Resource{Type: "users", ID: userID}}); e != nil {
		writeError(w, e)
		return
	}
	for _, p := range perms {
		if e := c.authorize(p); e != nil {
			writeError(w, &apiError{codeForbidden, fmt.Sprintf("permission %s is not allowed: %s", p, e.Message)})
			return
		}
	}
	for _, p := range perms {
		if p.Resource.OrgID != "" && p.Resource.OrgID != orgID {
			writeError(w, &apiError{codeInvalid, fmt.Sprintf("permission %s is not for org id %s", p, orgID)})
			return
		}
	}
	if s.orgByIDLocked(orgID) == nil || s.userByIDLocked(userID) == nil {
		writeError(w, &apiError{codeInvalid, "unable to create token"})
		return
	}
	a := s.addAuthLocked(orgID, userID, req.Description, req.Status == "active", perms)
	writeJSON(w, http.StatusCreated, s.responseLocked(a, true))
}

// canReadLocked is 2.x AuthorizeFindAuthorizations' test for one entry.
func (c caller) canReadLocked(a *authorization) bool {
	return c.authorize(Permission{"read", Resource{Type: "authorizations", ID: a.id, OrgID: a.orgID}}) == nil &&
		c.authorize(Permission{"read", Resource{Type: "users", ID: a.userID}}) == nil
}

// handleListAuthorizations filters by userID, user, orgID, org and id; IDs win over
// names; a token= filter is ignored like in 2.x; entries the caller cannot read are
// dropped silently.
func (s *Server) handleListAuthorizations(w http.ResponseWriter, r *http.Request, c caller) {
	q := r.URL.Query()
	for _, k := range []string{"userID", "orgID", "id"} {
		if v := q.Get(k); v != "" {
			if err := validID(v); err != nil {
				writeError(w, err)
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	userID, orgID, id := q.Get("userID"), q.Get("orgID"), q.Get("id")
	if userID == "" && q.Get("user") != "" {
		var found *user
		for _, u := range s.users {
			if u.name == q.Get("user") {
				found = u
			}
		}
		if found == nil {
			writeError(w, &apiError{codeNotFound, "user not found"})
			return
		}
		userID = found.id
	}
	if orgID == "" && q.Get("org") != "" {
		o, err := s.orgNamedLocked(q.Get("org"))
		if err != nil {
			writeError(w, err)
			return
		}
		orgID = o.id
	}
	list := make([]authResponse, 0, len(s.auths))
	for _, a := range s.auths {
		if (userID != "" && a.userID != userID) || (orgID != "" && a.orgID != orgID) || (id != "" && a.id != id) {
			continue
		}
		if !c.canReadLocked(a) {
			continue
		}
		list = append(list, s.responseLocked(a, false))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"links":          map[string]string{"self": "/api/v2/authorizations"},
		"authorizations": list,
	})
}

// findForLocked looks the authorization up (400 malformed id, 404 unknown) and then
// asks the authorizer for action on it, like 2.x AuthedAuthorizationService.
func (s *Server) findForLocked(c caller, id, action string) (*authorization, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	a := s.authByIDLocked(id)
	if a == nil {
		return nil, &apiError{codeNotFound, "authorization not found"}
	}
	if e := c.authorize(Permission{action, Resource{Type: "authorizations", ID: a.id, OrgID: a.orgID}}); e != nil {
		return nil, e
	}
	if e := c.authorize(Permission{action, Resource{Type: "users", ID: a.userID}}); e != nil {
		return nil, e
	}
	return a, nil
}

func (s *Server) handleGetAuthorization(w http.ResponseWriter, r *http.Request, c caller, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findForLocked(c, id, "read")
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.responseLocked(a, false))
}

// handlePatchAuthorization updates status and/or description. 2.x returns the JSON
// decoder's error unwrapped, so malformed JSON is its generic 500; so it is here.
func (s *Server) handlePatchAuthorization(w http.ResponseWriter, r *http.Request, c caller, id string) {
	if err := validID(id); err != nil {
		writeError(w, err)
		return
	}
	var upd struct {
		Status      *string `json:"status"`
		Description *string `json:"description"`
	}
	if err := json.NewDecoder(r.Body).Decode(&upd); err != nil {
		writeError(w, errInternal)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The 2.x handler finds the authorization through the authorizing service first
	// (read rights), then updates it through it (write rights).
	a, err := s.findForLocked(c, id, "read")
	if err == nil {
		a, err = s.findForLocked(c, id, "write")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if upd.Status != nil && *upd.Status != "active" && *upd.Status != "inactive" {
		writeError(w, &apiError{codeInvalid, "invalid status: must be active or inactive"})
		return
	}
	if upd.Status != nil {
		a.active = *upd.Status == "active"
	}
	if upd.Description != nil {
		a.description = *upd.Description
	}
	a.updated = time.Now().UTC()
	writeJSON(w, http.StatusOK, s.responseLocked(a, false))
}

func (s *Server) handleDeleteAuthorization(w http.ResponseWriter, r *http.Request, c caller, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.findForLocked(c, id, "write")
	if err != nil {
		writeError(w, err)
		return
	}
	s.deleteAuthLocked(a.id)
	w.WriteHeader(http.StatusNoContent)
}
