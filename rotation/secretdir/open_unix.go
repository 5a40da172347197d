//go:build unix

package secretdir

import (
	"os"
	"syscall"
)

// openNoFollow opens a file without following a final symbolic link and
// without blocking on a named pipe.
const openNoFollow = os.O_RDONLY | syscall.O_NOFOLLOW | syscall.O_NONBLOCK
