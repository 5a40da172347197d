// Package k8srbac makes client-go's fake clientset enforce a namespaced RBAC
// Role the way the API server's RBAC authorizer does, so that a test using
// the fake proves that the Role (parsed from deploy/kubernetes) grants
// everything the code does and the code does nothing else.
//
// The request attributes follow the real authorizer: a create carries no
// name (the name is in the body), so a rule with resourceNames never allows
// a create; a list, watch or deletecollection carries a name only when it is
// restricted by the field selector metadata.name=NAME. Subresources are
// matched as "resource/subresource". What it does not model: cluster-scoped
// requests (always refused: a Role cannot grant them), ClusterRoles,
// aggregated roles and non-resource URLs.
package k8srbac

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
)

// Attributes are what the RBAC authorizer looks at in a request.
type Attributes struct {
	Verb        string
	Group       string
	Resource    string
	Subresource string
	Namespace   string
	// Name is "" for create, and for list/watch/deletecollection without a
	// metadata.name field selector.
	Name string
}

func (a Attributes) String() string {
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.Group != "" {
		res += "." + a.Group
	}
	name := a.Name
	if name == "" {
		name = "(no name)"
	}
	return fmt.Sprintf("%s %s %s in namespace %q", a.Verb, res, name, a.Namespace)
}

// AttributesOf derives the authorizer's attributes from a fake clientset action.
func AttributesOf(action k8stesting.Action) Attributes {
	gvr := action.GetResource()
	a := Attributes{Verb: action.GetVerb(), Group: gvr.Group, Resource: gvr.Resource,
		Subresource: action.GetSubresource(), Namespace: action.GetNamespace()}
	switch act := action.(type) {
	case k8stesting.GetAction:
		a.Name = act.GetName()
	case k8stesting.UpdateAction:
		a.Name = objectName(act.GetObject())
	case k8stesting.PatchAction:
		a.Name = act.GetName()
	case k8stesting.DeleteAction:
		a.Name = act.GetName()
	case k8stesting.CreateAction:
		if a.Subresource != "" {
			// pods/eviction and the like: the parent's name is in the URL.
			a.Name = objectName(act.GetObject())
		}
	case k8stesting.ListAction:
		a.Name = selectedName(act.GetListRestrictions().Fields)
	case k8stesting.WatchAction:
		a.Name = selectedName(act.GetWatchRestrictions().Fields)
	case k8stesting.DeleteCollectionAction:
		a.Name = selectedName(act.GetListRestrictions().Fields)
	}
	if a.Verb == "delete-collection" {
		a.Verb = "deletecollection"
	}
	return a
}

func objectName(obj runtime.Object) string {
	m, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return m.GetName()
}

func selectedName(sel fields.Selector) string {
	if sel == nil {
		return ""
	}
	name, _ := sel.RequiresExactMatch("metadata.name")
	return name
}

// Allows reports whether role grants the request: the namespace is the
// role's and one rule matches group, resource, verb and, when the rule
// names objects, the request's name.
func Allows(role *rbacv1.Role, a Attributes) bool {
	if a.Namespace == "" || a.Namespace != role.Namespace {
		return false
	}
	res := a.Resource
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	for _, r := range role.Rules {
		if !matches(r.APIGroups, a.Group) || !matches(r.Resources, res) || !matches(r.Verbs, a.Verb) {
			continue
		}
		if len(r.ResourceNames) == 0 || (a.Name != "" && slices.Contains(r.ResourceNames, a.Name)) {
			return true
		}
	}
	return false
}

func matches(list []string, s string) bool {
	return slices.Contains(list, "*") || slices.Contains(list, s)
}

// Enforcer refuses, with the API server's 403, every request of a fake
// clientset that its Role does not grant, and keeps what it refused.
type Enforcer struct {
	role *rbacv1.Role
	mu   sync.Mutex
	// denied and granted are the requests seen, for messages and tests.
	denied, granted []Attributes
}

// Install puts the enforcing reactors in front of cs's reaction chains.
// The role's namespace must be set: the namespace the test's requests use.
// Reactors a test prepends later run before these (fault injection).
func Install(cs *k8stesting.Fake, role *rbacv1.Role) *Enforcer {
	e := &Enforcer{role: role.DeepCopy()}
	cs.PrependReactor("*", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if err := e.check(action); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	cs.PrependWatchReactor("*", func(action k8stesting.Action) (bool, watch.Interface, error) {
		if err := e.check(action); err != nil {
			return true, nil, err
		}
		return false, nil, nil
	})
	return e
}

// Enforce installs the enforcer and fails t at its end when a request was
// refused, naming each: the code needed something the Role does not grant.
func Enforce(t testing.TB, cs *k8stesting.Fake, role *rbacv1.Role) *Enforcer {
	t.Helper()
	e := Install(cs, role)
	t.Cleanup(func() {
		if d := e.Denied(); len(d) > 0 {
			msgs := make([]string, len(d))
			for i, a := range d {
				msgs[i] = a.String()
			}
			t.Errorf("RBAC: Role %s/%s does not grant %d request(s) the code made:\n  %s",
				role.Namespace, role.Name, len(d), strings.Join(msgs, "\n  "))
		}
	})
	return e
}

func (e *Enforcer) check(action k8stesting.Action) error {
	a := AttributesOf(action)
	e.mu.Lock()
	defer e.mu.Unlock()
	if Allows(e.role, a) {
		e.granted = append(e.granted, a)
		return nil
	}
	e.denied = append(e.denied, a)
	return apierrors.NewForbidden(schema.GroupResource{Group: a.Group, Resource: a.Resource}, a.Name,
		fmt.Errorf("RBAC: Role %s/%s does not grant %s", e.role.Namespace, e.role.Name, a))
}

// Denied returns the requests refused so far.
func (e *Enforcer) Denied() []Attributes {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.denied)
}

// Granted returns the requests allowed so far.
func (e *Enforcer) Granted() []Attributes {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.granted)
}
