package fsutil

import "os"

// SyncDir fsyncs a directory, so that a file created, renamed or removed in
// it survives a power cut.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
