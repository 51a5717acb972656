package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// The two files a Debian 12 server's rsyslog writes these daemons to.
const (
	authLog = iota // auth,authpriv.*: sshd
	mailLog        // mail.*: postfix, dovecot
)

var logNames = [...]string{authLog: "auth.log", mailLog: "mail.log"}

// hostname is the server's name in every syslog line.
const hostname = "mx1"

// Attempt is one line of the ground truth: one credential (or one
// recipient) a client submitted. Attackers' attempts are what a defence
// should block; legitimate users' attempts are what it must never block.
type Attempt struct {
	Time     time.Time `json:"time"`
	IP       string    `json:"ip"`
	Role     string    `json:"role"`     // "attacker" or "legit"
	Scenario string    `json:"scenario"` // "naive", "rotation", ..., "legit-nat", ...
	Service  string    `json:"service"`  // "sshd", "postfix", "dovecot"
	User     string    `json:"user,omitempty"`
	Result   string    `json:"result"`          // "failure", "success", "accepted" (an enumerated recipient that exists)
	Login    bool      `json:"login,omitempty"` // a password check (SSH, IMAP or POP3, SMTP AUTH), not a recipient
}

// logLine is one syslog record before its stamp and host are added.
type logLine struct {
	t    time.Time
	seq  uint64
	text string // "program[pid]: message"
}

// sim collects the lines and the ground truth of every scenario.
type sim struct {
	start, end time.Time // the attacks' period
	warm       time.Time // legitimate users start earlier: see -warmup
	lines      [2][]logLine
	truth      []Attempt
	seq        uint64
}

func newSim(start time.Time, d, warmup time.Duration) *sim {
	return &sim{start: start, end: start.Add(d), warm: start.Add(-warmup)}
}

// rng returns the random source of one scenario: derived from the seed and
// the scenario's name only, so selecting other scenarios does not change
// what this one writes.
func rng(seed uint64, name string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(name))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// newPID returns a process id for a new process (Debian 12's pid_max is
// 4194304). It draws from the scenario's stream, so scenarios stay
// independent of each other.
func (s *sim) newPID(r *rand.Rand) int { return 1000 + r.IntN(4194304-1000) }

func (s *sim) add(file int, t time.Time, text string) {
	s.seq++
	s.lines[file] = append(s.lines[file], logLine{t: t, seq: s.seq, text: text})
}

func (s *sim) record(a Attempt) { s.truth = append(s.truth, a) }

// in reports whether t lies inside the attacks' period.
func (s *sim) in(t time.Time) bool { return !t.Before(s.start) && t.Before(s.end) }

// inLegit reports whether t lies inside the legitimate users' period,
// which includes the warm-up.
func (s *sim) inLegit(t time.Time) bool { return !t.Before(s.warm) && t.Before(s.end) }

// days returns midnight of every day the legitimate users' period touches.
func (s *sim) days() []time.Time {
	var out []time.Time
	for d := s.warm.Truncate(24 * time.Hour); d.Before(s.end); d = d.Add(24 * time.Hour) {
		out = append(out, d)
	}
	return out
}

// session writes the lines of one connection: a cursor in time and the
// syslog tag of the process serving it.
type session struct {
	s    *sim
	file int
	tag  string
	t    time.Time
}

func (s *sim) session(file int, tag string, t time.Time) *session {
	return &session{s: s, file: file, tag: tag + ": ", t: t}
}

func (ss *session) log(msg string) { ss.s.add(ss.file, ss.t, ss.tag+msg) }

// logAs writes a line of another process at the cursor (dovecot's auth
// process answering postfix, systemd-logind after sshd).
func (ss *session) logAs(tag, msg string) { ss.s.add(ss.file, ss.t, tag+": "+msg) }

func (ss *session) wait(r *rand.Rand, min, max time.Duration) {
	ss.t = ss.t.Add(min + time.Duration(r.Int64N(int64(max-min)+1)))
}

// write sorts each file by time (lines of one second keep the order in
// which they were generated) and writes auth.log, mail.log and
// truth.jsonl into dir.
func (s *sim) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i, ls := range s.lines {
		slices.SortStableFunc(ls, func(a, b logLine) int { return a.t.Compare(b.t) })
		err := writeFile(filepath.Join(dir, logNames[i]), func(w io.Writer) error {
			var buf []byte
			for _, l := range ls {
				buf = l.t.UTC().AppendFormat(buf[:0], time.Stamp)
				buf = append(buf, ' ')
				buf = append(buf, hostname...)
				buf = append(buf, ' ')
				buf = append(buf, l.text...)
				buf = append(buf, '\n')
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.SortStableFunc(s.truth, func(a, b Attempt) int {
		return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.Scenario, b.Scenario))
	})
	return writeFile(filepath.Join(dir, "truth.jsonl"), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, a := range s.truth {
			a.Time = a.Time.UTC().Truncate(time.Second)
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeFile(path string, fill func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	if err := fill(w); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// Address helpers.

// v4 builds a.b.c.d.
func v4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

// prefix24 is an IPv4 /24 given by its first three octets.
type prefix24 [3]int

func (p prefix24) host(d int) netip.Addr { return v4(p[0], p[1], p[2], d) }

// hostsIn draws n distinct host addresses (.1 to .254) spread over ps.
// Each prefix holds at most 254, so n is capped there.
func hostsIn(r *rand.Rand, ps []prefix24, n int) []netip.Addr {
	n = min(n, 254*len(ps))
	seen := map[netip.Addr]bool{}
	out := make([]netip.Addr, 0, n)
	for len(out) < n {
		a := ps[r.IntN(len(ps))].host(1 + r.IntN(254))
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// distinct24s draws n distinct /24s whose first two octets come from
// sixteens.
func distinct24s(r *rand.Rand, sixteens [][2]int, n int) []prefix24 {
	seen := map[prefix24]bool{}
	var out []prefix24
	for len(out) < n {
		s := sixteens[r.IntN(len(sixteens))]
		p := prefix24{s[0], s[1], r.IntN(256)}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// v6In returns an address in the /64 p with a random interface identifier,
// as a host using privacy addresses or a VPS rotating its source picks.
func v6In(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	for i := 8; i < 16; i++ {
		b[i] = byte(r.IntN(256))
	}
	return netip.AddrFrom16(b)
}

// randomPublicV4 draws an address outside reserved space and outside the
// /16s in avoid (the ranges of the other groups of clients).
func randomPublicV4(r *rand.Rand, avoid map[[2]int]bool) netip.Addr {
	for {
		a, b := 1+r.IntN(223), r.IntN(256)
		switch {
		case a == 10, a == 127, a == 0, a >= 224,
			a == 100 && b >= 64 && b < 128,
			a == 169 && b == 254,
			a == 172 && b >= 16 && b < 32,
			a == 192 && b == 168,
			a == 198 && (b == 18 || b == 19):
			continue
		}
		if avoid[[2]int{a, b}] {
			continue
		}
		return v4(a, b, r.IntN(256), 1+r.IntN(254))
	}
}

// Small formatting helpers.

func itoa(n int) string { return strconv.Itoa(n) }

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func between(r *rand.Rand, lo, hi int) int { return lo + r.IntN(hi-lo+1) }

func dur(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// sessionID is a Dovecot 2.3 session id: 12 random bytes in base64.
func sessionID(r *rand.Rand) string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = b64[r.IntN(64)]
	}
	return string(b)
}
