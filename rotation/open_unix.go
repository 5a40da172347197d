//go:build unix

package rotation

import (
	"os"
	"syscall"
)

// openTokenFlags opens without blocking, which only matters for a named pipe.
const openTokenFlags = os.O_RDONLY | syscall.O_NONBLOCK
