package influxdb_v2_rotating

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/metric"
	"github.com/influxdata/telegraf/plugins/common/ratelimiter"
	"github.com/influxdata/telegraf/plugins/serializers/influx"

	"github.com/influxrotate/influxrotate/rotation"
)

// WriteError says why a write did not store its batch and, through Action,
// what the caller must do with the batch: drop it (rotation.ActionDrop) or
// keep it for a later attempt (every other action). It never contains a
// token: a refused credential is named by its fingerprint.
type WriteError struct {
	// Action is the decision for the batch: ActionDrop, ActionRetry,
	// ActionThrottle or ActionAuth (ActionSplit never escapes: the writer
	// splits by itself).
	Action rotation.Action
	// Status is the HTTP status of the deciding answer, 0 for a transport
	// error or when no request was sent (no token yet, waiting for Retry-After).
	Status int
	// RetryAfter is how long the server asked us to wait, 0 if it did not.
	RetryAfter time.Duration
	// Message is a complete, human-readable description, safe to log.
	Message string
	// Err is the underlying transport error, if any.
	Err error
}

func (e *WriteError) Error() string { return e.Message }

func (e *WriteError) Unwrap() error { return e.Err }

// Retryable reports whether the batch must be kept and sent again.
func (e *WriteError) Retryable() bool { return e.Action != rotation.ActionDrop }

// IsRetryable reports whether err means "keep the batch and send it again
// later" (true) or "the server will never take it, drop it" (false). A nil
// error is not retryable; an error that is not a *WriteError (an unexpected
// failure) is, since keeping data is the safe choice.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var we *WriteError
	if errors.As(err, &we) {
		return we.Retryable()
	}
	return true
}

func statusText(status int) string {
	if status == 0 {
		return "no answer"
	}
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// newDecisionError describes an answer that did not store the batch. Apart
// from a refused token, which is rotation's business, the wording is the
// stock plugin's, word for word: operators alert on these lines.
func newDecisionError(bucket string, d rotation.Decision, cred *rotation.Credential) *WriteError {
	var msg string
	switch d.Action {
	case rotation.ActionDrop:
		msg = fmt.Sprintf("failed to write metrics to %s (will be dropped: %s)", bucket, statusText(d.Status))
	case rotation.ActionAuth:
		msg = fmt.Sprintf("%s refused writing to bucket %q (%s); batch kept until a valid token is available", cred, bucket, statusText(d.Status))
	case rotation.ActionThrottle:
		msg = fmt.Sprintf("failed to write to %s; will retry in %s. (%s)", bucket, d.RetryAfter, statusText(d.Status))
	default:
		msg = fmt.Sprintf("failed to write metrics to bucket %q: %s", bucket, statusText(d.Status))
	}
	if d.Message != "" {
		msg += ": " + d.Message
	}
	return &WriteError{Action: d.Action, Status: d.Status, RetryAfter: d.RetryAfter, Message: msg}
}

// batchError is what Write returns when only part of a batch is settled. The
// agent takes accepted and rejected metric indices from Telegraf's
// internal.PartialWriteError, a type no package outside Telegraf may import;
// errors.As asks the error itself through As, which fills the agent's value
// by reflection. The indices in neither list stay in the agent's buffer.
type batchError struct {
	err        error
	accept     []int
	reject     []int
	rejectErrs []error
}

func (e *batchError) Error() string { return e.err.Error() }

func (e *batchError) Unwrap() error { return e.err }

const partialWriteErrorPkg = "github.com/influxdata/telegraf/internal"

// As fills a **internal.PartialWriteError target for the agent.
func (e *batchError) As(target any) bool {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return false
	}
	ptrType := v.Elem().Type()
	if ptrType.Kind() != reflect.Pointer {
		return false
	}
	st := ptrType.Elem()
	if st.Kind() != reflect.Struct || st.Name() != "PartialWriteError" || st.PkgPath() != partialWriteErrorPkg {
		return false
	}
	nv := reflect.New(st)
	set := func(name string, val any) bool {
		f := nv.Elem().FieldByName(name)
		rv := reflect.ValueOf(val)
		if !f.IsValid() || !f.CanSet() || !rv.Type().AssignableTo(f.Type()) {
			return false
		}
		f.Set(rv)
		return true
	}
	if !set("Err", e.err) || !set("MetricsAccept", e.accept) ||
		!set("MetricsReject", e.reject) || !set("MetricsRejectErrors", e.rejectErrs) {
		return false
	}
	v.Elem().Set(nv)
	return true
}

// The error values the stock plugin returns for a flush that the rate
// limit cut short and for one that dropped metrics it could not serialise.
// They live in Telegraf's internal package, which only Telegraf may import;
// its public ratelimiter hands them out, so they are taken from there once,
// and errors.Is matches them as it matches the stock plugin's.
var errSizeLimitReached, errSerialization = telegrafWriteErrors()

func telegrafWriteErrors() (sizeLimit, serialization error) {
	ser := &influx.Serializer{}
	if err := ser.Init(); err != nil {
		panic(fmt.Sprintf("influx serializer: %v", err))
	}
	limited := ratelimiter.NewIndividualSerializer(ser)
	fits := metric.New("m", nil, map[string]any{"v": 1}, time.Unix(0, 0))
	// Nothing fits in a limit of 0 bytes: the bare ErrSizeLimitReached.
	_, sizeLimit = limited.SerializeBatch([]telegraf.Metric{fits}, 0)
	// A metric without fields cannot be serialised: a PartialWriteError
	// wrapping ErrSerialization.
	_, err := limited.SerializeBatch([]telegraf.Metric{metric.New("m", nil, nil, time.Unix(0, 0))}, math.MaxInt64)
	serialization = errors.Unwrap(err)
	if sizeLimit == nil || serialization == nil {
		panic("Telegraf's ratelimiter no longer reports a size limit or a serialization failure")
	}
	return sizeLimit, serialization
}
