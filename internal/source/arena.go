package source

import "unsafe"

// Arena turns records into strings that share large blocks: one
// allocation for a few hundred lines instead of one a line, which under a
// flood is a good share of what reading costs. A string it returns stays
// valid and unchanged for good (a block is never written again once a
// string points into it); a block is freed when no string into it is
// left. So a consumer that keeps part of a line for long (a user name as a
// map key) must copy it, as the filters, the engine and the insight
// counter do, or that piece keeps its whole block alive. The zero Arena is
// ready to use; an Arena is for one goroutine.
type Arena struct {
	block []byte
}

// arenaBlock is the size of a block; a record over a quarter of it gets a
// string of its own.
const arenaBlock = 64 << 10

// String returns rec's text as a string.
func (a *Arena) String(rec []byte) string {
	n := len(rec)
	if n == 0 {
		return ""
	}
	if n > arenaBlock/4 {
		return string(rec)
	}
	if cap(a.block)-len(a.block) < n {
		a.block = make([]byte, 0, arenaBlock)
	}
	start := len(a.block)
	a.block = append(a.block, rec...)
	return unsafe.String(&a.block[start], n)
}
