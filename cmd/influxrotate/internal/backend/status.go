package backend

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/influxrotate/influxrotate/rotation"
)

// How the controller reads an answer of the management API. A status code
// means what rotation.Classify, the project's one status mapping, says it
// means for a write; this file only restates that for calls that manage
// authorizations, and is the one place that does so:
//
//	Classify            management call                    here
//	accept (2xx)        done                               –
//	throttle, retry     retried with backoff (429, 5xx;    Retryable
//	                    not 3xx, an unfollowed redirect)
//	auth (401, 403)     refused for good: the operator     Refused
//	                    token may not do it
//	split (413)         refused for good: a management     Refused
//	                    request cannot be split
//	drop (other 4xx)    refused for good, except 404:      Refused
//	404                 the authorization does not exist  gone, notFound
//	                    (for a delete: already done)
//
// and for a read of InfluxQL /query (adoption reports), where the answer
// says something about the server rather than the call:
//
//	auth (401, 403)     the operator token may not read    accessDenied
//	404                 the server has no such endpoint    noEndpoint
//
// A network error is retried, a client timeout included; a context error
// and an error marked Permanent (an answer that cannot be decoded) are not,
// and are not a refusal either: the cycle stays journaled and the next run
// tries again.

// Retryable reports whether err is worth retrying: an answer Classify says
// to retry or throttle (429, 5xx), or a network error, a client timeout
// included. A context error is not: the caller gave up. (Retry.Do also
// stops when its context ends, so a timeout that was the context's own
// deadline is not retried either.)
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		// http.Client.Timeout, a dial or TLS handshake timeout. Since Go
		// 1.23 such an error also matches context.DeadlineExceeded.
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, rotation.ErrRedirectRefused) {
		// A wrong URL or a proxy in between: the next attempt gets the same.
		return false
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if he.Status >= 300 && he.Status < 400 {
			// An unfollowed redirect, as above. (A writer keeps its batch
			// on one, hence Classify's retry.)
			return false
		}
		switch rotation.Classify(he.Status, nil, nil).Action {
		case rotation.ActionThrottle, rotation.ActionRetry:
			return true
		}
		return false
	}
	var pe *permanentError
	return !errors.As(err, &pe)
}

// Refused reports whether the server refused a call for good: an error
// answer that retrying cannot change. The cycle then ends with the old
// token still active instead of retrying.
func Refused(err error) bool {
	var he *HTTPError
	if !errors.As(err, &he) || he.Status < 400 {
		// A 1.x statement error comes with 200; an unfollowed redirect
		// says nothing about the call.
		return false
	}
	switch rotation.Classify(he.Status, nil, nil).Action {
	case rotation.ActionAuth, rotation.ActionSplit, rotation.ActionDrop:
		return true
	}
	return false
}

// gone reports whether err says the authorization does not exist (for a
// delete: already done). InfluxDB 2.x answers 404; 1.x answers an unknown
// user with a statement error, whatever the status.
func gone(err error) bool {
	return StatusOf(err) == http.StatusNotFound || (err != nil && strings.Contains(err.Error(), "user not found"))
}

// notFound turns err into ErrNotFound for the authorization (or 1.x user)
// when it says that does not exist.
func notFound(err error, kind, id string) error {
	if gone(err) {
		return fmt.Errorf("%s %s: %w", kind, id, ErrNotFound)
	}
	return err
}

// accessDenied reports whether err is an answer that refuses the operator
// token the call (Classify's auth: 401, 403), which no retry changes. Which
// of the two a server sends for a missing permission differs (2.x 403,
// InfluxDB 3's v1 /query 401), so callers ask this rather than for a status.
func accessDenied(err error) bool {
	var he *HTTPError
	return errors.As(err, &he) && rotation.Classify(he.Status, nil, nil).Action == rotation.ActionAuth
}

// noEndpoint reports whether err says the server has no such endpoint: a
// 404 to a read of a fixed path (such as /query), not of a resource.
func noEndpoint(err error) bool { return StatusOf(err) == http.StatusNotFound }

// StatusOf returns the HTTP status of err, or 0.
func StatusOf(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}
