package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemonProbe reads the daemon's memory and CPU from /proc and its policy
// counters from the control socket; either may be absent.
type daemonProbe struct {
	pid     int
	control string
	client  *http.Client
}

// Checkpoint is the daemon's memory at one moment.
type Checkpoint struct {
	Label      string `json:"label"`
	RSSKiB     int64  `json:"vm_rss_kib"`
	HWMKiB     int64  `json:"vm_hwm_kib"`
	Threads    int64  `json:"threads"`
	Open       int    `json:"open"`       // Postfix policy connections open
	Parked     int    `json:"parked"`     // of which held by the tarpit
	Failed     uint64 `json:"failed"`     // handler timeouts and panics so far, answered with the fail action
	Goroutines int    `json:"goroutines"` // when the status API reports it; else 0
	// SlabKiB is the kernel's slab memory, system-wide (Slab in
	// /proc/meminfo): where socket structures live, for both ends of every
	// loopback connection; not part of any RSS.
	SlabKiB int64 `json:"slab_kib"`
}

func (c Checkpoint) String() string {
	s := fmt.Sprintf("VmRSS %.1f MiB, VmHWM %.1f MiB, %d threads, %d open, %d parked", float64(c.RSSKiB)/1024, float64(c.HWMKiB)/1024, c.Threads, c.Open, c.Parked)
	if c.Goroutines > 0 {
		s += fmt.Sprintf(", %d goroutines", c.Goroutines)
	}
	return s
}

func (d *daemonProbe) checkpoint(label string) Checkpoint {
	c := Checkpoint{Label: label, SlabKiB: slabKiB()}
	if d.pid > 0 {
		st := procStatus(d.pid)
		c.RSSKiB, c.HWMKiB, c.Threads = st["VmRSS"], st["VmHWM"], st["Threads"]
	}
	if st, err := d.status(); err == nil {
		if p := st.Policy.Postfix; p != nil {
			c.Open, c.Parked, c.Failed = p.Open, p.Parked, p.Failed
		}
		c.Goroutines = st.Goroutines
	}
	return c
}

// procStatus reads the kB and count fields of /proc/PID/status.
func procStatus(pid int) map[string]int64 {
	m := map[string]int64{}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(fields[0], 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// daemonNoFile is the "Max open files" line of /proc/PID/limits.
func daemonNoFile(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return ""
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			f := strings.Fields(l)
			if len(f) >= 5 {
				return f[3] + " soft, " + f[4] + " hard"
			}
		}
	}
	return ""
}

// slabKiB reads Slab from /proc/meminfo.
func slabKiB() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Slab:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

const clockTick = 100 // USER_HZ on Linux

// cpu returns the daemon's user+system CPU time so far.
func (d *daemonProbe) cpu() time.Duration {
	if d.pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(3) ... utime(14) stime(15), so 11 and 12 here.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / clockTick
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is the first field of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// status is the part of the daemon's status this tool reads.
type status struct {
	Goroutines int `json:"goroutines"`
	Policy     struct {
		Postfix *postfixStats `json:"postfix"`
	} `json:"policy"`
}

// postfixStats are the Postfix policy server's counters (postfix.Stats).
type postfixStats struct {
	Requests, Delayed, Failed uint64
	Parked, Open              int
}

func (d *daemonProbe) status() (*status, error) {
	if d.control == "" {
		return nil, fmt.Errorf("no control socket")
	}
	if d.client == nil {
		d.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", d.control)
			},
		}}
	}
	resp, err := d.client.Get("http://rampart/v1/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: %s", resp.Status)
	}
	var st status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}
