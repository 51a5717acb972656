//go:build linux

package main

import (
	"syscall"
	"time"
)

// processUsage returns the process's CPU time (user and system) and its
// peak resident set size in bytes.
func processUsage() (cpu time.Duration, rss int64, ok bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, false
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return cpu, ru.Maxrss * 1024, true
}
