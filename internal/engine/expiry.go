package engine

// Expiry. Entries of a table go stale: a failure older than every window
// that could count it, a ban past its end. Sweeping every table for them
// costs in proportion to the tables' size, once a minute of log time: a
// replay of days of a big attack spent most of its time there. Instead each
// table keeps a timing wheel of its keys by the time they may go (due), and
// Tick visits only the buckets whose time has come: the cost is what
// expires, plus one revisit of an entry that was refreshed since it was
// scheduled (it is put back at its new time).
//
// A key enters the wheel when it enters the table. Updates do not touch the
// wheel (an entry is refreshed far more often than it expires); a key whose
// entry was deleted or evicted stays queued until its bucket comes and is
// skipped then. So that such dead keys cannot pile up under a flood, the
// wheel is rebuilt from the table when they outnumber the live ones.
//
// Buckets are coarse (the table's horizon over wheelSize buckets): an entry
// may outlive its due time by one bucket. Nothing depends on that time
// exactly: every reader checks an entry's times against its own window.

// wheelSize is the number of buckets of every wheel.
const wheelSize = 256

// wheel schedules the keys of one table.
type wheel[K comparable] struct {
	width   stamp // seconds per bucket
	buckets [wheelSize][]K
	next    int64 // the bucket number (time / width) visited next; -1: none yet
	queued  int   // keys in the buckets, live or dead
}

// newWheel returns a wheel whose buckets span horizon.
func newWheel[K comparable](horizon stamp) *wheel[K] {
	return &wheel[K]{width: max(1, (horizon+wheelSize-2)/(wheelSize-1)), next: -1}
}

// add queues k in the bucket of time due. A due time before the next
// bucket goes in the next bucket; one beyond the wheel's span goes in its
// last, to be rescheduled from there.
func (w *wheel[K]) add(k K, due stamp) {
	n := int64(due / w.width)
	if w.next < 0 {
		// The first key: the wheel starts a span before it, so that keys
		// due earlier still find their bucket.
		w.next = max(0, n-(wheelSize-1))
	}
	n = min(max(n, w.next), w.next+wheelSize-1)
	b := &w.buckets[n%wheelSize]
	*b = append(*b, k)
	w.queued++
}

// schedule queues k (just inserted with value v) when its table expires
// entries.
func (b *boundedMap[K, V]) schedule(k K, v *V) {
	if b.wheel == nil {
		return
	}
	if d := b.due(k, v); d != 0 {
		b.wheel.add(k, d)
	}
	// Rebuild when dead keys outnumber the live ones (and a quarter of the
	// slots): the rebuild costs one pass over the slots, paid for by at
	// least that many deletions or evictions since the last.
	if b.wheel.queued > 2*b.n+max(4096, len(b.slots)/4) {
		b.rebuildWheel()
	}
}

// rebuildWheel requeues every live entry, dropping the dead keys.
func (b *boundedMap[K, V]) rebuildWheel() {
	w := b.wheel
	for i := range w.buckets {
		w.buckets[i] = nil
	}
	w.queued = 0
	for i := range b.slots {
		if b.meta[i] != 0 {
			if d := b.due(b.slots[i].k, &b.slots[i].v); d != 0 {
				w.add(b.slots[i].k, d)
			}
		}
	}
}

// expire visits the buckets due by now: an entry due by now is deleted
// (through onEvict, like an eviction), a live one refreshed since it was
// queued is queued again at its new time. It returns how many it deleted.
func (b *boundedMap[K, V]) expire(now stamp) int {
	w := b.wheel
	if w == nil || w.next < 0 {
		return 0
	}
	cur := int64(now / w.width)
	if cur < w.next {
		return 0
	}
	deleted := 0
	from := w.next
	if cur-from >= wheelSize {
		from = cur - wheelSize + 1 // every bucket is due: visit each once
	}
	// Keys requeued below land in buckets after cur; mark them as the
	// wheel's new start first so add places them right.
	w.next = cur + 1
	for n := from; n <= cur; n++ {
		bucket := w.buckets[n%wheelSize]
		w.buckets[n%wheelSize] = nil
		w.queued -= len(bucket)
		for _, k := range bucket {
			i, ok := b.find(k)
			if !ok {
				continue
			}
			s := &b.slots[i]
			switch d := b.due(s.k, &s.v); {
			case d == 0:
			case d <= now:
				if b.onEvict != nil {
					b.onEvict(s.k, &s.v)
				}
				b.deleteAt(i)
				deleted++
			default:
				w.add(k, d)
			}
		}
	}
	return deleted
}
