package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// resolveCurrent finds the authorization the targets hold now: the state
// file's, else authorization_id, else the one active authorization this
// controller made for the credential or whose description matches. It
// returns nil, nil when there is none and explicit buckets allow a first
// authorization to be made.
func (c *Controller) resolveCurrent(ctx context.Context, cr *config.Credential, st *state.State) (*backend.Authorization, error) {
	id := st.Current.ID
	origin := "the state file"
	var gone error
	if id == "" {
		id, origin = cr.AuthorizationID, "authorization_id"
	}
	if id != "" {
		a, err := c.be.Get(ctx, id)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, backend.ErrNotFound) {
			return nil, err
		}
		if origin == "authorization_id" {
			// A rotation retired it; without the journal that says so (a
			// fresh state_dir) the one authorization this controller made
			// for the credential is the current one.
			gone = &config.Error{Err: fmt.Errorf("credential %q: authorization_id %s does not exist, and no active authorization of a rotation replaces it", cr.Name, id)}
		}
		c.log.Warn("the current authorization is gone; looking for the credential's authorization by its label or description",
			"credential", cr.Name, "authorization_id", id, "from", origin)
	}
	list, err := c.be.List(ctx, cr.Org)
	if err != nil {
		return nil, err
	}
	var managed, described []*backend.Authorization
	for _, a := range list {
		if !a.Active {
			continue
		}
		if _, ok := c.labelled(cr, a); ok {
			managed = append(managed, a)
		} else if a.Description == cr.Description {
			described = append(described, a)
		}
	}
	cands := managed
	if len(cands) == 0 {
		if gone != nil {
			return nil, gone
		}
		cands = described
	}
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) > 1:
		ids := make([]string, len(cands))
		for i, a := range cands {
			ids[i] = a.ID
		}
		return nil, &config.Error{Err: fmt.Errorf("credential %q: %d active authorizations match description %q (%s); set authorization_id",
			cr.Name, len(cands), cr.Description, strings.Join(ids, ", "))}
	case len(cr.Buckets) > 0:
		return nil, nil
	}
	return nil, &config.Error{Err: fmt.Errorf("credential %q: no active authorization with description %q; set authorization_id or buckets",
		cr.Name, cr.Description)}
}

// labelled returns the rotation id of an authorization this controller made
// for cr.
func (c *Controller) labelled(cr *config.Credential, a *backend.Authorization) (string, bool) {
	l, ok := c.be.LabelOf(a)
	if !ok {
		return "", false
	}
	if l.Credential != "" {
		return l.RotationID, l.Credential == cr.Name
	}
	return l.RotationID, l.Description == cr.Description
}
