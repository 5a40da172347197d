package controller

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/influxrotate/influxrotate/cmd/influxrotate/internal/state"
)

// promMetrics are the Prometheus metrics of a controller, served on /metrics
// by `influxrotate run`. Labels are credential names, phases and outcomes:
// never a token or a fingerprint.
type promMetrics struct {
	reg         *prometheus.Registry
	cycles      *prometheus.CounterVec
	phases      *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	leader      prometheus.Gauge
	age         *tokenAge
}

func newPromMetrics(now func() time.Time) *promMetrics {
	m := &promMetrics{
		reg: prometheus.NewRegistry(),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "influxrotate", Name: "cycles_total",
			Help: "Rotation runs by credential and outcome (ok, not_due, failed, interrupted, rolled_back)."},
			[]string{"credential", "outcome"}),
		phases: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "influxrotate", Name: "phase_duration_seconds",
			Help:    "Time spent in each phase of the rotation cycle, grace and observe included.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 900, 1800}},
			[]string{"credential", "phase"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "influxrotate", Name: "last_success_timestamp_seconds",
			Help: "When the credential's last rotation completed (Unix time)."}, []string{"credential"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "influxrotate", Name: "leader",
			Help: "1 while this controller is the one that rotates (the leader), 0 on standby."}),
		age: &tokenAge{now: now, since: map[string]time.Time{},
			desc: prometheus.NewDesc("influxrotate_token_age_seconds", "Age of the credential's current token.", []string{"credential"}, nil)},
	}
	m.reg.MustRegister(m.cycles, m.phases, m.lastSuccess, m.leader, m.age,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observeState updates the gauges that follow the journal.
func (m *promMetrics) observeState(st *state.State) {
	if !st.Current.Since.IsZero() {
		m.age.set(st.Credential, st.Current.Since)
	}
	if st.Last.Outcome == OutcomeOK && !st.Last.Finished.IsZero() {
		m.lastSuccess.WithLabelValues(st.Credential).Set(float64(st.Last.Finished.Unix()))
	}
}

// tokenAge reports each token's age at scrape time.
type tokenAge struct {
	desc  *prometheus.Desc
	now   func() time.Time
	mu    sync.Mutex
	since map[string]time.Time
}

func (a *tokenAge) set(credential string, since time.Time) {
	a.mu.Lock()
	a.since[credential] = since
	a.mu.Unlock()
}

func (a *tokenAge) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

func (a *tokenAge) Collect(ch chan<- prometheus.Metric) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for cred, since := range a.since {
		ch <- prometheus.MustNewConstMetric(a.desc, prometheus.GaugeValue, now.Sub(since).Seconds(), cred)
	}
}
