package aws

import (
	"maps"

	"github.com/saker-dev/saker/engine/delivery"
)

// chunks groups the indexes 0..n-1, in order, into calls of at most maxItems items and
// maxBytes bytes (size(i) is what item i counts); an item larger than maxBytes on its own
// gets a call of its own (the service decides whether it fits). apart, when not nil, starts
// a new call before item i when it cannot share one with the call's first item.
func chunks(n, maxItems, maxBytes int, size func(i int) int, apart func(first, i int) bool) [][]int {
	var out [][]int
	var cur []int
	total := 0
	for i := range n {
		s := size(i)
		if len(cur) > 0 && (len(cur) == maxItems || total+s > maxBytes || (apart != nil && apart(cur[0], i))) {
			out = append(out, cur)
			cur, total = nil, 0
		}
		cur = append(cur, i)
		total += s
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// sendChunks sends a batch of n events call by call: send returns the items of its call
// the service refused (by batch index), or err when the whole call failed. A failed call
// fails its items only, unless it was the whole batch (then err is returned as is, so the
// engine sees the error's class). The result is nil or a *delivery.BatchError.
func sendChunks(n int, calls [][]int, send func(call []int) (refused map[int]error, err error)) error {
	failed := map[int]error{}
	for _, call := range calls {
		refused, err := send(call)
		if err != nil {
			if len(call) == n {
				return err
			}
			for _, idx := range call {
				failed[idx] = err
			}
			continue
		}
		maps.Copy(failed, refused)
	}
	if len(failed) == 0 {
		return nil
	}
	return &delivery.BatchError{Failed: failed}
}
