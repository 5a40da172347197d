package influxdb_v2_rotating

import (
	"time"

	"github.com/influxdata/telegraf/selfstat"

	"github.com/influxrotate/influxrotate/rotation"
)

// statsMeasurement is the selfstat measurement; inputs.internal reports it
// as internal_token_rotation with the agent's output, _id and alias tags.
const statsMeasurement = "token_rotation"

// registerStats registers every rotation statistic and write_queue_depth
// with the collector the agent injected. Without one (tests, the execd
// binary) StatsFields still works.
func (p *InfluxDB) registerStats() {
	if p.Statistics == nil {
		return
	}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	p.selfStats = make(map[string]selfstat.Stat)
	for name := range p.StatsFields() {
		p.selfStats[name] = p.Statistics.Register(statsMeasurement, name, nil)
	}
	p.updateStatsLocked()
}

// updateStats copies the current values into the selfstat collector; the
// agent calls Write every flush, so values are at most a flush old.
func (p *InfluxDB) updateStats() {
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	p.updateStatsLocked()
}

func (p *InfluxDB) updateStatsLocked() {
	if p.selfStats == nil {
		return
	}
	for name, v := range p.StatsFields() {
		if s, ok := p.selfStats[name]; ok {
			s.Set(v)
		}
	}
}

// StatsFields returns the rotation statistics (rotation.Stats.Fields),
// write_queue_depth (writes in flight or waiting), write_throttled (answers
// 429, 502, 503 or 504) and write_transport_errors (requests that got no
// answer: refused or reset connections, timeouts, DNS failures) and the
// adoption reports stored and failed. It holds
// counts and durations only, never a token or fingerprint.
func (p *InfluxDB) StatsFields() map[string]int64 {
	stats := p.stats
	if stats == nil {
		stats = new(rotation.Stats)
	}
	fields := stats.Fields(time.Now())
	fields["write_queue_depth"] = p.queue.Load()
	fields["write_throttled"] = p.writeThrottled.Load()
	fields["write_transport_errors"] = p.writeTransportErrors.Load()
	fields["adoption_reports"] = p.adoptionReports.Load()
	fields["adoption_report_failures"] = p.adoptionReportFailures.Load()
	return fields
}
