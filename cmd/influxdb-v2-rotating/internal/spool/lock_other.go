//go:build !unix

package spool

// lockDir is a no-op where flock is unavailable: run one process per spool_dir.
func lockDir(string) (func(), error) { return func() {}, nil }
