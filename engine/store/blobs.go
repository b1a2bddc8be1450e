package store

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// blobs keeps the compressed blocks by their first event id: in memory when ui.storage.path
// is unset, in a bbolt file otherwise.
type blobs interface {
	put(key uint64, val []byte) error
	get(key uint64) ([]byte, error)
	// view calls fn with the block without copying it; val is only valid during the call.
	view(key uint64, fn func(val []byte) error) error
	del(keys []uint64) error
	// each calls fn with every block in key order; val is only valid during the call.
	each(fn func(key uint64, val []byte) error) error
	close() error
}

type memBlobs struct {
	mu sync.RWMutex
	m  map[uint64][]byte
}

func newMemBlobs() *memBlobs { return &memBlobs{m: map[uint64][]byte{}} }

func (b *memBlobs) put(key uint64, val []byte) error {
	b.mu.Lock()
	b.m[key] = val
	b.mu.Unlock()
	return nil
}

func (b *memBlobs) get(key uint64) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.m[key]
	if !ok {
		return nil, fmt.Errorf("block %d is not stored", key)
	}
	return v, nil
}

func (b *memBlobs) view(key uint64, fn func([]byte) error) error {
	v, err := b.get(key) // blocks are never modified in place: no copy needed
	if err != nil {
		return err
	}
	return fn(v)
}

func (b *memBlobs) del(keys []uint64) error {
	b.mu.Lock()
	for _, k := range keys {
		delete(b.m, k)
	}
	b.mu.Unlock()
	return nil
}

func (b *memBlobs) each(func(uint64, []byte) error) error { return nil } // nothing survives a restart
func (b *memBlobs) close() error                          { return nil }

var bucketBlocks = []byte("blocks")

type boltBlobs struct{ db *bolt.DB }

func openBoltBlobs(path string) (*boltBlobs, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketBlocks)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &boltBlobs{db: db}, nil
}

func blockKey(k uint64) []byte { return binary.BigEndian.AppendUint64(nil, k) }

func (b *boltBlobs) put(key uint64, val []byte) error {
	return b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketBlocks).Put(blockKey(key), val) })
}

func (b *boltBlobs) get(key uint64) ([]byte, error) {
	var out []byte
	err := b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlocks).Get(blockKey(key))
		if v == nil {
			return fmt.Errorf("block %d is not stored", key)
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (b *boltBlobs) view(key uint64, fn func([]byte) error) error {
	return b.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketBlocks).Get(blockKey(key))
		if v == nil {
			return fmt.Errorf("block %d is not stored", key)
		}
		return fn(v)
	})
}

func (b *boltBlobs) del(keys []uint64) error {
	if len(keys) == 0 {
		return nil
	}
	return b.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketBlocks)
		for _, k := range keys {
			if err := bk.Delete(blockKey(k)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *boltBlobs) each(fn func(uint64, []byte) error) error {
	return b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlocks).ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				return nil
			}
			return fn(binary.BigEndian.Uint64(k), v)
		})
	})
}

func (b *boltBlobs) close() error { return b.db.Close() }
