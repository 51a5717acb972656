// Command shieldload drives bench/shields.sh: a TCP service with a fixed
// number of slots, a connection flood, and a client that measures whether
// it is still served. Each runs in a network namespace the script made.
//
//	shieldload serve -addr 10.90.0.1:1143 -slots 256
//	shieldload flood -dst 10.90.0.1:1143 -src 10.90.0.2 -rate 1000 -for 10s [-hold]
//	shieldload probe -dst 10.91.0.1:1143 -src 10.91.0.2 -n 50 -every 100ms
//
// flood and probe print one JSON object on standard output.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: shieldload serve|flood|probe [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "", "serve: listen address")
	slots := fs.Int("slots", 256, "serve: connections served at once; more are closed at once")
	dst := fs.String("dst", "", "flood, probe: the service")
	src := fs.String("src", "", "flood, probe: source address")
	rate := fs.Int("rate", 1000, "flood: connection attempts a second")
	dur := fs.Duration("for", 10*time.Second, "flood: how long")
	hold := fs.Bool("hold", false, "flood: keep connections that get through open, saying nothing")
	n := fs.Int("n", 50, "probe: connections")
	every := fs.Duration("every", 100*time.Millisecond, "probe: pause between connections")
	fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(*addr, *slots)
	case "flood":
		err = flood(*dst, *src, *rate, *dur, *hold)
	case "probe":
		err = probe(*dst, *src, *n, *every)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shieldload:", err)
		os.Exit(1)
	}
}

// serve greets each connection and holds it until the client closes it or
// a minute passes, like a login service waiting for credentials; beyond
// slots, a connection is closed at once (the service is full).
func serve(addr string, slots int) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var busy atomic.Int64
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		if busy.Add(1) > int64(slots) {
			busy.Add(-1)
			c.Close()
			continue
		}
		go func() {
			defer busy.Add(-1)
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			c.Write([]byte("* OK ready\r\n"))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
}

func dialer(src string, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// flood opens rate connections a second for dur, at most 4,096 attempts
// in flight (a dropped SYN holds one for the 1s dial timeout).
func flood(dst, src string, rate int, dur time.Duration, hold bool) error {
	d := dialer(src, time.Second)
	var tried, connected, failed atomic.Int64
	var mu sync.Mutex
	var held []net.Conn
	sem := make(chan struct{}, 4096)
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Second / time.Duration(max(rate, 1))
	next := start
	for time.Since(start) < dur {
		next = next.Add(interval)
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		select {
		case sem <- struct{}{}:
		default:
			continue // in-flight cap: the attempt is not made
		}
		tried.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := d.Dial("tcp", dst)
			if err != nil {
				failed.Add(1)
				return
			}
			connected.Add(1)
			if hold {
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
				return
			}
			c.Close()
		}()
	}
	elapsed := time.Since(start)
	wg.Wait()
	for _, c := range held {
		c.Close()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"tried": tried.Load(), "connected": connected.Load(), "failed": failed.Load(),
		"seconds": elapsed.Seconds(), "rate": float64(tried.Load()) / elapsed.Seconds(),
		"cpu_ms": float64(cpu.Microseconds()) / 1000,
	})
}

// probe connects n times, one after the other, and counts those greeted
// within 2s, with the time to the greeting.
func probe(dst, src string, n int, every time.Duration) error {
	d := dialer(src, 2*time.Second)
	ok := 0
	var took []time.Duration
	for range n {
		start := time.Now()
		c, err := d.Dial("tcp", dst)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil && len(line) > 4 && line[:4] == "* OK" {
				ok++
				took = append(took, time.Since(start))
			}
			c.Close()
		}
		time.Sleep(every)
	}
	slices.Sort(took)
	pct := func(p float64) float64 {
		if len(took) == 0 {
			return 0
		}
		return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"n": n, "served": ok, "p50_ms": pct(0.5), "p95_ms": pct(0.95)})
}
