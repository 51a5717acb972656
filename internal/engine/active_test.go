package engine

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestActiveBanEnd checks the ban end eviction reads against its
// definition, the stamp of start plus duration, over starts before 1970
// and 2000 (stamp 0) and past 2136 (the last stamp), sub-second parts that
// carry, and durations from a nanosecond to centuries.
func TestActiveBanEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	starts := []int64{0, -1, 1, 999_999_999, -999_999_999, stampBase * 1e9, stampBase*1e9 - 1, (stampBase + 1<<32 - 1) * 1e9}
	durs := []time.Duration{-1, 0, 1, time.Second - 1, time.Second, 10 * time.Minute, 100 * 365 * 24 * time.Hour}
	for range 100000 {
		starts = append(starts, rng.Int64N(1<<62)-1<<61)
		durs = append(durs, time.Duration(rng.Int64N(int64(250*365*24*time.Hour))))
	}
	for i, start := range starts {
		// The sub-second parts also sum to exactly a second: a carry.
		carry := time.Duration(1e9-(start%1e9+1e9)%1e9) + time.Minute
		for _, dur := range []time.Duration{durs[i%len(durs)], durs[(i*7+3)%len(durs)], durs[i%7], carry} {
			b := activeBan{start: start, dur: dur}
			want := stamp(1<<32 - 1)
			if dur > 0 {
				want = toStamp(time.Unix(0, start).Add(dur))
			}
			if got := b.end(); got != want {
				t.Fatalf("start %d, dur %v: end %d, want %d", start, dur, got, want)
			}
		}
	}
}
