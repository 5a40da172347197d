//go:build !unix

package rotation

import "os"

const openTokenFlags = os.O_RDONLY
