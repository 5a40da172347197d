// Package k8sfake adds to client-go's fake clientset the one API server
// behaviour the controller's correctness rests on and the fake lacks:
// optimistic concurrency. The fake's tracker neither sets
// metadata.resourceVersion nor refuses an update carrying a stale one, so
// code that relies on 409 Conflict (a journal written by two controllers,
// a Lease taken by two candidates) would pass against it while broken.
package k8sfake

import (
	"fmt"
	"strconv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// Fake is what the generated fake clientsets embed.
type Fake interface {
	PrependReactor(verb, resource string, reaction k8stesting.ReactionFunc)
	Tracker() k8stesting.ObjectTracker
}

// ResourceVersions makes creates and updates of cs set a new
// metadata.resourceVersion (and gets, of an object that has none yet), and an update whose resourceVersion is set and
// differs from the stored object's fail with 409 Conflict, as the API
// server does. An update without resourceVersion is unconditional, as
// there. Install it before reactors that must see the outcome (RBAC first:
// a forbidden request never reaches the store).
func ResourceVersions(cs Fake) {
	var mu sync.Mutex
	var next int64 = 1000
	tracker := cs.Tracker()
	stamp := func(obj runtime.Object) error {
		m, err := meta.Accessor(obj)
		if err != nil {
			return err
		}
		next++
		m.SetResourceVersion(strconv.FormatInt(next, 10))
		return nil
	}
	// Objects given to NewClientset carry no resourceVersion; the first
	// read gives them one, so that no update of them is unconditional.
	cs.PrependReactor("get", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		act, ok := action.(k8stesting.GetAction)
		if !ok || action.GetSubresource() != "" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		obj, err := tracker.Get(action.GetResource(), action.GetNamespace(), act.GetName())
		if err != nil {
			return true, nil, err
		}
		m, err := meta.Accessor(obj)
		if err != nil || m.GetResourceVersion() != "" {
			return true, obj, err
		}
		obj = obj.DeepCopyObject()
		if err := stamp(obj); err != nil {
			return true, nil, err
		}
		if err := tracker.Update(action.GetResource(), obj, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
	cs.PrependReactor("create", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		act, ok := action.(k8stesting.CreateAction)
		if !ok || action.GetSubresource() != "" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		obj := act.GetObject().DeepCopyObject()
		if err := stamp(obj); err != nil {
			return true, nil, err
		}
		if err := tracker.Create(action.GetResource(), obj, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
	cs.PrependReactor("update", "*", func(action k8stesting.Action) (bool, runtime.Object, error) {
		act, ok := action.(k8stesting.UpdateAction)
		if !ok || action.GetSubresource() != "" {
			return false, nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		obj := act.GetObject().DeepCopyObject()
		m, err := meta.Accessor(obj)
		if err != nil {
			return true, nil, err
		}
		cur, err := tracker.Get(action.GetResource(), action.GetNamespace(), m.GetName())
		if err != nil {
			return true, nil, err
		}
		cm, err := meta.Accessor(cur)
		if err != nil {
			return true, nil, err
		}
		if rv := m.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return true, nil, apierrors.NewConflict(action.GetResource().GroupResource(), m.GetName(),
				fmt.Errorf("the object has been modified; resourceVersion %s, stored %s", rv, cm.GetResourceVersion()))
		}
		if err := stamp(obj); err != nil {
			return true, nil, err
		}
		if err := tracker.Update(action.GetResource(), obj, action.GetNamespace()); err != nil {
			return true, nil, err
		}
		return true, obj, nil
	})
}
