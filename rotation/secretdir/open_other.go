//go:build !unix

package secretdir

import "os"

// openNoFollow relies on os.Root, which refuses links out of the
// directory, where O_NOFOLLOW does not exist.
const openNoFollow = os.O_RDONLY
