//go:build !race

package influxdb_v2_rotating

const raceEnabled = false
