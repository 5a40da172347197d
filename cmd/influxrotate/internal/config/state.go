package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// validateState checks [state] and state_dir: the directory store needs
// state_dir, the kubernetes store names its ConfigMap and Leases, and no
// option of one store is accepted with the other.
func (c *Config) validateState() error {
	s := &c.State
	switch s.Type {
	case "", StateDirectory:
		s.Type = StateDirectory
		if c.StateDir == "" {
			return errors.New("state_dir is required (or [state] type = \"kubernetes\")")
		}
		if s.Namespace != "" || s.ConfigMap != "" || s.LeasePrefix != "" || s.LeaseDuration != 0 || s.Kubeconfig != "" || s.Context != "" {
			return errors.New("[state] namespace, configmap, lease_prefix, lease_duration, kubeconfig and context apply to type \"kubernetes\" only")
		}
		return nil
	case StateKubernetes:
	default:
		return fmt.Errorf("[state] type %q: must be %q or %q", s.Type, StateDirectory, StateKubernetes)
	}
	if c.StateDir != "" {
		return errors.New("state_dir does not apply to [state] type \"kubernetes\": the journal is in the ConfigMap")
	}
	if s.Namespace == "" {
		return errors.New("[state] namespace is required with type \"kubernetes\"")
	}
	if s.ConfigMap == "" {
		s.ConfigMap = DefaultStateConfigMap
	}
	if s.LeasePrefix == "" {
		s.LeasePrefix = DefaultLeasePrefix
	}
	if s.LeaseDuration == 0 {
		s.LeaseDuration = Duration(DefaultLeaseDuration)
	}
	// A Lease counts whole seconds.
	if d := time.Duration(s.LeaseDuration); d < time.Second || d%time.Second != 0 {
		return fmt.Errorf("[state] lease_duration %s: must be whole seconds, at least 1s", d)
	}
	for what, name := range map[string]string{"namespace": s.Namespace, "configmap": s.ConfigMap} {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return fmt.Errorf("[state] %s %q: %s", what, name, strings.Join(errs, "; "))
		}
	}
	for _, cr := range c.Credentials {
		if errs := validation.IsDNS1123Subdomain(s.LeaseName(cr.Name)); len(errs) > 0 {
			return fmt.Errorf("credential %q: its Lease name %q: %s", cr.Name, s.LeaseName(cr.Name), strings.Join(errs, "; "))
		}
		if errs := validation.IsConfigMapKey(cr.Name + ".json"); len(errs) > 0 {
			return fmt.Errorf("credential %q: not a ConfigMap key: %s", cr.Name, strings.Join(errs, "; "))
		}
	}
	return nil
}

// validateRun checks [run].
func (c *Config) validateRun() error {
	r := &c.Run
	if r.Listen != "" {
		if _, _, err := net.SplitHostPort(r.Listen); err != nil {
			return fmt.Errorf("[run] listen %q: %w", r.Listen, err)
		}
	}
	if r.Workers == 0 {
		r.Workers = DefaultRunWorkers
	}
	if r.Workers < 0 {
		return errors.New("[run] workers must be positive")
	}
	if r.LeaderLease != "" && c.State.Type != StateKubernetes {
		return errors.New("[run] leader_lease needs [state] type = \"kubernetes\"")
	}
	if c.State.Type == StateKubernetes {
		if r.LeaderLease == "" {
			r.LeaderLease = DefaultLeaderLease
		}
		if errs := validation.IsDNS1123Subdomain(r.LeaderLease); len(errs) > 0 {
			return fmt.Errorf("[run] leader_lease %q: %s", r.LeaderLease, strings.Join(errs, "; "))
		}
		for _, cr := range c.Credentials {
			if c.State.LeaseName(cr.Name) == r.LeaderLease {
				return fmt.Errorf("credential %q: its Lease is the leader_lease %q", cr.Name, r.LeaderLease)
			}
		}
	}
	return nil
}
