//go:build !linux

package main

import "time"

// processUsage is not measured off Linux.
func processUsage() (cpu time.Duration, rss int64, ok bool) { return 0, 0, false }
