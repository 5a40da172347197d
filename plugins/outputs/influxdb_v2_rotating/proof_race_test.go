//go:build race

package influxdb_v2_rotating

// raceEnabled: the race detector slows the whole pipeline several times, so
// the soak's load floor applies only to builds without it (make soak).
const raceEnabled = true
