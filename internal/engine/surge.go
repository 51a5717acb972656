package engine

import (
	"fmt"
	"time"
)

// surgeState follows the global failure rate.
type surgeState struct {
	minute   int64   // current minute (stamp/60)
	count    int     // failures in it
	baseline float64 // EWMA of failures per minute
	until    stamp   // surge mode lasts until then; 0: off
	on       bool
}

// observeSurge counts a failure at t and reports whether surge mode is on.
func (e *Engine) observeSurge(t stamp) bool {
	sc := &e.cfg.Surge
	if sc.Factor <= 0 {
		return false
	}
	s := &e.surge
	m := int64(t) / 60
	if s.minute == 0 {
		s.minute = m
	}
	if m > s.minute {
		// Fold the finished minute, then the empty ones since, into the baseline.
		const alpha = 1.0 / 60
		s.baseline += alpha * (float64(s.count) - s.baseline)
		for i := s.minute + 1; i < m && i < s.minute+240; i++ {
			s.baseline -= alpha * s.baseline
		}
		s.minute, s.count = m, 0
	}
	s.count++
	limit := max(float64(sc.MinRate), sc.Factor*s.baseline)
	if float64(s.count) >= limit {
		s.until = t + stamp(sc.Hold/time.Second)
		if !s.on {
			s.on = true
			e.stats.Surges++
			e.log.Warn("surge mode on: thresholds tightened", "failures_per_min", s.count, "baseline_per_min", fmt.Sprintf("%.1f", s.baseline),
				"maxretry", sc.MaxRetry, "at", t.Time().UTC().Format(time.RFC3339))
		}
	}
	if s.on && t > s.until {
		s.on = false
		e.log.Info("surge mode off: thresholds back to normal", "baseline_per_min", fmt.Sprintf("%.1f", s.baseline), "at", t.Time().UTC().Format(time.RFC3339))
	}
	return s.on
}
