package store

import (
	"os"
	"runtime"
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

// lowerPriority makes the calling goroutine's thread (locked to it) nice 10: storing alerts
// for the UI is background work that must not take the CPU from the inputs and the outputs
// when they need it. Best effort: an error leaves the priority as it is.
func lowerPriority() {
	runtime.LockOSThread()
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 10)
}
