package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/backend"
	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/config"
)

// desiredPermissions are the permissions of the new authorization: the
// current one's, or write on the configured buckets — never more than the
// current one holds.
func (c *Controller) desiredPermissions(ctx context.Context, cr *config.Credential, cur *backend.Authorization) ([]backend.Permission, error) {
	if len(cr.Buckets) == 0 {
		if cur == nil || len(cur.Permissions) == 0 {
			return nil, &config.Error{Err: fmt.Errorf("credential %q: the current authorization has no permissions to clone; set buckets", cr.Name)}
		}
		return cur.Permissions, nil
	}
	perms, err := c.be.BucketPermissions(ctx, cr.Org, cr.Buckets)
	if err != nil {
		return nil, &config.Error{Err: fmt.Errorf("credential %q: %w", cr.Name, err)}
	}
	if cur != nil {
		if extra := missingFrom(perms, cur.Permissions); len(extra) > 0 {
			return nil, &config.Error{Err: fmt.Errorf("credential %q: buckets grant more than the current authorization %s holds: %s",
				cr.Name, cur.ID, strings.Join(extra, ", "))}
		}
	}
	return perms, nil
}

func permKey(p backend.Permission) string {
	ref := p.ID
	if ref == "" {
		ref = "name:" + p.Name
	}
	return p.Action + ":" + p.Type + "/" + p.OrgID + "/" + ref
}

// missingFrom lists the permissions of a that b does not hold.
func missingFrom(a, b []backend.Permission) []string {
	have := map[string]bool{}
	for _, p := range b {
		have[permKey(p)] = true
	}
	var out []string
	for _, p := range a {
		if !have[permKey(p)] {
			out = append(out, permKey(p))
		}
	}
	sort.Strings(out)
	return out
}

// samePermissions compares permission sets, ignoring order.
func samePermissions(a, b []backend.Permission) bool {
	return len(missingFrom(a, b)) == 0 && len(missingFrom(b, a)) == 0
}
