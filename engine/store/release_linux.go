package store

import (
	"os"
	"syscall"
)

// release drops the file's pages from the process's resident set; they stay in the page
// cache. Loading reads every block once to rebuild the index; afterwards a block is read
// only when a query needs it, so keeping them all mapped would only inflate the RSS. Called
// when no transaction is open (bbolt may not remap meanwhile).
func (b *boltBlobs) release() {
	st, err := os.Stat(b.db.Path())
	if err != nil {
		return
	}
	n := st.Size() &^ int64(os.Getpagesize()-1)
	if n <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, b.db.Info().Data, uintptr(n), syscall.MADV_DONTNEED)
}
