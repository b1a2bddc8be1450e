//go:build !linux

package store

// release is a no-op where madvise is not wired: the file's pages stay mapped.
func (b *boltBlobs) release() {}
