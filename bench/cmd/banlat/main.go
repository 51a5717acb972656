// Command banlat measures how fast a ban daemon (Rampart, fail2ban) gets an
// attacking address into the kernel: from the moment the failure line that
// crosses maxretry is appended to the log the daemon follows, to the moment
// the address is an element of a set of the daemon's nftables table.
//
// It runs inside the network namespace of the daemon under test (see
// bench/banlatency.sh), appends realistic OpenSSH lines (RFC 3164 stamps,
// current time) to the log, and watches the kernel's nftables change
// notifications — the ones `nft monitor` prints — stamping each added
// element on arrival.
//
//	banlat latency -log FILE -table TABLE [-n 1000] [-warmup 5] [-o out.json]
//	banlat bulk    -log FILE -table TABLE [-n 100000] [-o out.json]
//	banlat report  rampart.json fail2ban.json
//	banlat flood   -n 10000000 -o flood.log   # a log for memory runs of `rampart replay`
//
// latency: for each of -warmup + -n fresh addresses, pause a random time
// (uniform in [0, -jitter], the same sequence for every daemon), append 4
// failures, wait
// -settle so the daemon has read them, append the 5th in one write(2) and
// note t0 just before it (and t0' just after); wait until the address is in
// the table's set (t1) before the next address, so no queue builds up. The
// reported latency is t1 - t0: on a busy machine the daemon, woken by the
// write, may preempt banlat between the write and a clock read after it,
// which would make t1 - t0' understate the latency (even below zero), while
// t1 - t0 can only overstate it, by the write's own duration (kept as
// write_us). Warm-up bans (the first includes
// any lazy table creation) are reported apart from the measured ones.
//
// bulk: append -n lines, one failure each from -n distinct addresses (for a
// jail with maxretry 1), as fast as possible, and report when the last of
// them is in the kernel.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	var err error
	switch os.Args[1] {
	case "latency":
		err = latencyCmd(ctx, os.Args[2:])
	case "bulk":
		err = bulkCmd(ctx, os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	case "flood":
		err = floodCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "banlat: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: banlat latency|bulk -log FILE -table TABLE [flags]\n       banlat report RESULT.json...\n       banlat flood [-n LINES] [-o FILE]")
	os.Exit(2)
}

// common are the flags of latency and bulk.
type common struct {
	log, table, observer, out, host string
	base                            string
	timeout                         time.Duration
}

func (c *common) register(fs *flag.FlagSet, base string) {
	fs.StringVar(&c.log, "log", "", "log `file` the daemon follows (appended to)")
	fs.StringVar(&c.table, "table", "", "nftables `table` whose sets hold the bans (rampart, f2b-table)")
	fs.StringVar(&c.observer, "observer", "netlink", "how to see set elements: netlink (the nftables multicast group, in process) or nft (an `nft monitor` child)")
	fs.StringVar(&c.out, "o", "", "write the result as JSON to `file`")
	fs.StringVar(&c.host, "host", "srv", "host name in the log lines")
	fs.StringVar(&c.base, "base", base, "first attacker `address`; the others follow it")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up on a ban after this long")
}

func (c *common) check(fs *flag.FlagSet) error {
	if fs.NArg() > 0 || c.log == "" || c.table == "" {
		fs.Usage()
		return fmt.Errorf("-log and -table are required")
	}
	return nil
}

// observe starts the chosen observer and proves it listens.
func (c *common) observe(ctx context.Context) (*seenSet, func(), error) {
	s := newSeenSet(c.table)
	var stop func()
	var err error
	switch c.observer {
	case "netlink":
		stop, err = observeNetlink(ctx, s)
	case "nft":
		stop, err = observeNFTMonitor(ctx, s)
	default:
		return nil, nil, fmt.Errorf("unknown observer %q", c.observer)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := probeObserver(ctx, s, fmt.Sprintf("banlat_probe_%d", os.Getpid())); err != nil {
		stop()
		return nil, nil, fmt.Errorf("observer %s did not see the probe element: %w", c.observer, err)
	}
	return s, stop, nil
}

// logWriter appends OpenSSH failure lines as rsyslog writes them.
type logWriter struct {
	f    *os.File
	host string
	pid  int
	buf  []byte
}

func openLog(path, host string) (*logWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &logWriter{f: f, host: host, pid: 20000 + rand.IntN(10000)}, nil
}

// failure adds one "Failed password" line for a to the buffer; each
// attempt gets its own sshd pid and source port, as with real clients.
func (w *logWriter) failure(a netip.Addr) {
	w.pid++
	w.buf = fmt.Appendf(w.buf, "%s %s sshd[%d]: Failed password for root from %s port %d ssh2\n",
		time.Now().Format(time.Stamp), w.host, w.pid, a, 32768+rand.IntN(28000))
}

// flush writes the buffer in one write(2) on the O_APPEND descriptor.
func (w *logWriter) flush() error {
	_, err := w.f.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}

// addrAt returns the i-th attacker address after base.
func addrAt(base netip.Addr, i int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(i)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Result is what latency writes with -o.
type Result struct {
	Label    string    `json:"label"`
	Observer string    `json:"observer"`
	N        int       `json:"n"`
	Settle   string    `json:"settle"`
	Jitter   string    `json:"jitter"`
	WarmupMs []float64 `json:"warmup_ms"`      // in order; the first is the daemon's first ban
	Ms       []float64 `json:"ms"`             // the measured bans, in order: t1 - t0 (t0 before the write)
	MsAfter  []float64 `json:"ms_after_write"` // the same, from t0' (after the write)
	WriteUs  []float64 `json:"write_us"`       // duration of each measured write(2)
	T0       []int64   `json:"t0_unix_ns"`     // wall clock of each t0, to line up with daemon logs
	Missing  int       `json:"missing"`        // not in the kernel within -timeout
	Early    int       `json:"early"`          // in the kernel before the 5th failure
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	LoadAvg  []string  `json:"loadavg"` // /proc/loadavg before and after
	// Share of the run's wall time during which some runnable task waited
	// for a CPU, and some task waited for I/O (/proc/pressure, "some").
	CPUPressure float64 `json:"cpu_pressure_pct"`
	IOPressure  float64 `json:"io_pressure_pct"`
}

// pressure returns the "some" stall total of /proc/pressure/NAME, in µs.
func pressure(name string) int64 {
	b, err := os.ReadFile("/proc/pressure/" + name)
	if err != nil {
		return -1
	}
	var avg10, avg60, avg300 float64
	var total int64
	if _, err := fmt.Sscanf(string(b), "some avg10=%f avg60=%f avg300=%f total=%d", &avg10, &avg60, &avg300, &total); err != nil {
		return -1
	}
	return total
}

// stalled returns the share (%) of wall time since start, with the totals
// then, during which tasks stalled on CPU and on I/O; -1 if unknown.
func stalled(start time.Time, cpu0, io0 int64) (cpu, io float64) {
	pct := func(t0, t1 int64) float64 {
		if t0 < 0 || t1 < 0 {
			return -1
		}
		return 100 * float64(t1-t0) / float64(time.Since(start).Microseconds())
	}
	return pct(cpu0, pressure("cpu")), pct(io0, pressure("io"))
}

// sleep pauses for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func latencyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("banlat latency", flag.ContinueOnError)
	var c common
	c.register(fs, "198.18.0.10")
	label := fs.String("label", "", "name of the daemon, for the report")
	n := fs.Int("n", 1000, "measured `bans`")
	warmup := fs.Int("warmup", 5, "warm-up `bans` before the measured ones")
	maxretry := fs.Int("maxretry", 5, "failures that ban")
	settle := fs.Duration("settle", 100*time.Millisecond, "pause after the first maxretry-1 failures, so the daemon has read them before the last")
	jitter := fs.Duration("jitter", time.Second, "longest random pause before each address's first failure (0: none)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	base, err := netip.ParseAddr(c.base)
	if err != nil || !base.Is4() {
		return fmt.Errorf("-base %q: want an IPv4 address", c.base)
	}
	if *label == "" {
		*label = c.table
	}
	s, stop, err := c.observe(ctx)
	if err != nil {
		return err
	}
	defer stop()
	w, err := openLog(c.log, c.host)
	if err != nil {
		return err
	}
	defer w.f.Close()

	res := Result{Label: *label, Observer: c.observer, N: *n, Settle: settle.String(), Jitter: jitter.String(), Start: time.Now(), LoadAvg: []string{loadavg()}}
	cpu0, io0 := pressure("cpu"), pressure("io")
	pauses := rand.New(rand.NewPCG(1, 2)) // the same pauses for every daemon
	for i := range *warmup + *n {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if *jitter > 0 {
			sleep(ctx, time.Duration(pauses.Int64N(int64(*jitter)+1)))
		}
		a := addrAt(base, i)
		for range *maxretry - 1 {
			w.failure(a)
		}
		if err := w.flush(); err != nil {
			return err
		}
		sleep(ctx, *settle)
		if _, ok := s.get(a); ok {
			res.Early++
			fmt.Fprintf(os.Stderr, "banlat: %s banned before its last failure\n", a)
			continue
		}
		w.failure(a)
		t0 := time.Now()
		if err := w.flush(); err != nil {
			return err
		}
		t0after := time.Now()
		err := s.wait(ctx, t0.Add(c.timeout), func() bool { _, ok := s.at[a]; return ok })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if _, cnt := s.count(); cnt != nil {
				return cnt
			}
			res.Missing++
			fmt.Fprintf(os.Stderr, "banlat: %s not banned within %v\n", a, c.timeout)
			continue
		}
		t1, _ := s.get(a)
		ms := float64(t1.Sub(t0)) / float64(time.Millisecond)
		if i < *warmup {
			res.WarmupMs = append(res.WarmupMs, ms)
		} else {
			res.Ms = append(res.Ms, ms)
			res.MsAfter = append(res.MsAfter, float64(t1.Sub(t0after))/float64(time.Millisecond))
			res.WriteUs = append(res.WriteUs, float64(t0after.Sub(t0))/float64(time.Microsecond))
			res.T0 = append(res.T0, t0.UnixNano())
		}
		if done := i + 1 - *warmup; done > 0 && done%100 == 0 {
			fmt.Fprintf(os.Stderr, "banlat: %s: %d/%d bans, last %.2f ms\n", *label, done, *n, ms)
		}
	}
	res.CPUPressure, res.IOPressure = stalled(res.Start, cpu0, io0)
	res.End = time.Now()
	res.LoadAvg = append(res.LoadAvg, loadavg())
	fmt.Println(summaryHeader)
	fmt.Println(res.summary())
	return writeJSON(c.out, res)
}

// BulkResult is what bulk writes with -o.
type BulkResult struct {
	Label      string    `json:"label"`
	N          int       `json:"n"`
	WrittenMs  float64   `json:"written_ms"`  // all lines appended
	FirstMs    float64   `json:"first_ms"`    // the first address in the kernel
	AllMs      float64   `json:"all_ms"`      // the last address in the kernel
	ProgressMs []float64 `json:"progress_ms"` // 10%, 20%, ... 100% in the kernel
	Seen       int       `json:"seen"`        // addresses in the kernel at the end
	LoadAvg    []string  `json:"loadavg"`     // before and after
	// As in Result.
	CPUPressure float64 `json:"cpu_pressure_pct"`
	IOPressure  float64 `json:"io_pressure_pct"`
}

func bulkCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("banlat bulk", flag.ContinueOnError)
	var c common
	c.register(fs, "100.64.0.1")
	label := fs.String("label", "", "name of the daemon, for the report")
	n := fs.Int("n", 100_000, "distinct attacker `addresses`, one failure line each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.check(fs); err != nil {
		return err
	}
	base, err := netip.ParseAddr(c.base)
	if err != nil || !base.Is4() {
		return fmt.Errorf("-base %q: want an IPv4 address", c.base)
	}
	if *label == "" {
		*label = c.table
	}
	s, stop, err := c.observe(ctx)
	if err != nil {
		return err
	}
	defer stop()
	w, err := openLog(c.log, c.host)
	if err != nil {
		return err
	}
	defer w.f.Close()
	res := BulkResult{Label: *label, N: *n, LoadAvg: []string{loadavg()}}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

	cpu0, io0 := pressure("cpu"), pressure("io")
	t0 := time.Now()
	for i := range *n {
		w.failure(addrAt(base, i))
		if len(w.buf) >= 64<<10 {
			if err := w.flush(); err != nil {
				return err
			}
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	res.WrittenMs = ms(time.Since(t0))
	deadline := time.Now().Add(c.timeout)
	for step := 1; step <= 10; step++ {
		want := *n * step / 10
		if err := s.wait(ctx, deadline, func() bool { return len(s.at) >= want }); err != nil {
			cnt, _ := s.count()
			return fmt.Errorf("%d of %d addresses in the kernel: %w", cnt, *n, err)
		}
		res.ProgressMs = append(res.ProgressMs, ms(time.Since(t0)))
	}
	first, last := time.Time{}, time.Time{}
	s.mu.Lock()
	for _, t := range s.at {
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	res.Seen = len(s.at)
	s.mu.Unlock()
	res.FirstMs, res.AllMs = ms(first.Sub(t0)), ms(last.Sub(t0))
	res.CPUPressure, res.IOPressure = stalled(t0, cpu0, io0)
	res.LoadAvg = append(res.LoadAvg, loadavg())
	fmt.Printf("%s: %d lines appended in %.0f ms; first ban in the kernel at %.0f ms, all %d at %.0f ms (%.0f bans/s end to end); CPU pressure %.0f%%, I/O %.0f%%\n",
		res.Label, res.N, res.WrittenMs, res.FirstMs, res.Seen, res.AllMs, float64(res.Seen)/(res.AllMs/1000), res.CPUPressure, res.IOPressure)
	return writeJSON(c.out, res)
}

func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// percentile returns the nearest-rank q-quantile of sorted xs.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

const summaryHeader = "| daemon | observer | bans | p50 ms | p90 ms | p99 ms | max ms | mean ms | first ban ms | other warm-up bans ms | missing | early |\n|---|---|---|---|---|---|---|---|---|---|---|---|"

func (r Result) summary() string {
	s := slices.Clone(r.Ms)
	slices.Sort(s)
	mean := 0.0
	for _, x := range s {
		mean += x
	}
	mean /= float64(max(len(s), 1))
	first, rest := "-", "-"
	if len(r.WarmupMs) > 0 {
		first = fmt.Sprintf("%.1f", r.WarmupMs[0])
		var parts []string
		for _, x := range r.WarmupMs[1:] {
			parts = append(parts, fmt.Sprintf("%.1f", x))
		}
		rest = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("| %s | %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %d | %d |",
		r.Label, r.Observer, len(s), percentile(s, .5), percentile(s, .9), percentile(s, .99), s[len(s)-1], mean, first, rest, r.Missing, r.Early)
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("banlat report", flag.ContinueOnError)
	vmstatPath := fs.String("vmstat", "", "`file` of `vmstat -n -t 1` taken during the runs: compare the machine during the slowest bans with the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		usage()
	}
	var rs []Result
	for _, p := range args {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if len(r.Ms) == 0 {
			return fmt.Errorf("%s: no measured bans", p)
		}
		rs = append(rs, r)
	}
	fmt.Println(summaryHeader)
	for _, r := range rs {
		fmt.Println(r.summary())
	}
	fmt.Println()
	for _, r := range rs {
		if len(r.WriteUs) == 0 {
			continue
		}
		wu, after := slices.Sorted(slices.Values(r.WriteUs)), slices.Sorted(slices.Values(r.MsAfter))
		fmt.Printf("%s (settle %s, jitter %s; CPU pressure %.0f%%, I/O %.0f%% of the run): the 5th line's write(2) took p50 %.0f µs, p99 %.0f µs, max %.0f µs; "+
			"timed from after the write instead: p50 %.2f ms, p99 %.2f ms, min %.2f ms\n",
			r.Label, r.Settle, r.Jitter, r.CPUPressure, r.IOPressure, percentile(wu, .5), percentile(wu, .99), wu[len(wu)-1],
			percentile(after, .5), percentile(after, .99), after[0])
	}
	if *vmstatPath != "" {
		vm, err := readVmstat(*vmstatPath)
		if err != nil {
			return err
		}
		fmt.Println()
		for _, r := range rs {
			fmt.Println(vm.compare(r))
		}
	}
	if len(rs) >= 2 {
		a, b := slices.Sorted(slices.Values(rs[0].Ms)), slices.Sorted(slices.Values(rs[1].Ms))
		fmt.Printf("\n%s / %s: p50 %.1f×, p90 %.1f×, p99 %.1f×, max %.1f×\n", rs[1].Label, rs[0].Label,
			percentile(b, .5)/percentile(a, .5), percentile(b, .9)/percentile(a, .9),
			percentile(b, .99)/percentile(a, .99), b[len(b)-1]/a[len(a)-1])
	}
	return nil
}

// floodCmd writes a log of -n sshd failures, each from a different address
// (IPv4 scattered over the whole space, every fourth one IPv6), one per
// millisecond of log time: the flood `rampart replay` must survive in
// bounded memory.
func floodCmd(args []string) error {
	fs := flag.NewFlagSet("banlat flood", flag.ContinueOnError)
	n := fs.Int("n", 10_000_000, "lines, each from a new `address`")
	out := fs.String("o", "-", "output `file` (- for standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f := os.Stdout
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			return err
		}
		defer f.Close()
	}
	start := time.Date(2025, time.March, 8, 6, 0, 0, 0, time.UTC)
	var buf []byte
	for i := range *n {
		var a netip.Addr
		if i%4 == 3 {
			var b [16]byte
			b[0], b[1] = 0x20, 0x01
			b[2], b[3], b[4], b[5] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			b[15] = 1
			a = netip.AddrFrom16(b)
		} else {
			x := uint32(i)*2654435761 + 0x0b000000 // a bijection: all distinct
			a = netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
		}
		t := start.Add(time.Duration(i) * time.Millisecond)
		buf = fmt.Appendf(buf, "%s srv sshd[%d]: Failed password for root from %s port %d ssh2\n",
			t.Format(time.Stamp), 1000+i%60000, a, 32768+i%28000)
		if len(buf) >= 1<<20 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	_, err := f.Write(buf)
	return err
}

// vmstat is `vmstat -n -t 1` output by the second each row ends.
type vmstat map[int64]vmRow

type vmRow struct{ r, us, sy, id, wa, st float64 }

func readVmstat(path string) (vmstat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vm := vmstat{}
	var col map[string]int
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "r" {
			col = map[string]int{}
			for i, name := range f {
				col[name] = i
			}
			continue
		}
		if col == nil || len(f) < 3 {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02 15:04:05", f[len(f)-2]+" "+f[len(f)-1], time.Local)
		if err != nil {
			continue
		}
		num := func(name string) float64 {
			i, ok := col[name]
			if !ok || i >= len(f) {
				return math.NaN()
			}
			var x float64
			fmt.Sscan(f[i], &x)
			return x
		}
		vm[t.Unix()] = vmRow{r: num("r"), us: num("us"), sy: num("sy"), id: num("id"), wa: num("wa"), st: num("st")}
	}
	if len(vm) == 0 {
		return nil, fmt.Errorf("%s: no vmstat -t rows", path)
	}
	return vm, nil
}

// compare describes the machine (median vmstat row of the second each ban
// was in) during the slowest 1% of r's bans and during all of them.
func (vm vmstat) compare(r Result) string {
	if len(r.T0) != len(r.Ms) {
		return r.Label + ": no time stamps to line up with vmstat"
	}
	cut := percentile(slices.Sorted(slices.Values(r.Ms)), .99)
	var slow, all []vmRow
	for i, t := range r.T0 {
		row, ok := vm[time.Unix(0, t).Unix()+1] // the row ending after t0
		if !ok {
			continue
		}
		all = append(all, row)
		if r.Ms[i] >= cut {
			slow = append(slow, row)
		}
	}
	med := func(rows []vmRow, f func(vmRow) float64) float64 {
		xs := make([]float64, len(rows))
		for i, x := range rows {
			xs[i] = f(x)
		}
		slices.Sort(xs)
		return percentile(xs, .5)
	}
	desc := func(rows []vmRow) string {
		return fmt.Sprintf("run queue %.0f, user+system %.0f%%, idle %.0f%%, iowait %.0f%%, steal %.0f%%",
			med(rows, func(x vmRow) float64 { return x.r }), med(rows, func(x vmRow) float64 { return x.us + x.sy }),
			med(rows, func(x vmRow) float64 { return x.id }), med(rows, func(x vmRow) float64 { return x.wa }),
			med(rows, func(x vmRow) float64 { return x.st }))
	}
	if len(all) == 0 {
		return r.Label + ": vmstat does not cover the run"
	}
	return fmt.Sprintf("%s, machine by vmstat (medians of the second of each ban): slowest 1%% (>= %.1f ms, %d bans): %s; all %d bans: %s",
		r.Label, cut, len(slow), desc(slow), len(all), desc(all))
}
