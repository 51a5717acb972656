// Command loggen writes a synthetic syslog file shaped like the auth and mail
// logs of a Debian 12 server under attack, for the throughput benchmark in
// bench/throughput.sh.
//
// The log interleaves sessions the way a real server's log does: an SSH brute
// force attempt is several sshd lines under one pid, an SMTP session is a
// handful of postfix/smtpd lines, a Dovecot login failure is an auth line and
// a *-login line sharing a session id. Lines are mixed by program (sshd ~40%,
// postfix ~25%, dovecot ~20%, other daemons ~15%); clients come from tens of
// thousands of IPv4 and IPv6 addresses, a few of them very busy. The shapes
// follow OpenSSH 9.2, Postfix 3.7, Dovecot 2.3.19 and the rest of Debian 12,
// written by rsyslog in the traditional RFC 3164 format.
//
// The output depends only on -n and -seed.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	n := flag.Int("n", 1_000_000, "number of `lines` to write")
	seed := flag.Uint64("seed", 1, "random `seed`; the same seed gives the same log")
	out := flag.String("o", "-", "output `file` (- for standard output)")
	startS := flag.String("start", "2025-03-08T06:25:03Z", "time of the first line (RFC 3339)")
	gap := flag.Float64("gap", meanGapSec, "mean `seconds` between two lines")
	heavy := flag.Bool("heavy", false, "attack-heavy: hundreds of thousands of attacking addresses, most seen once, a third of the IPv4 ones packed four to a /24 (the full-pipeline benchmark's log)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: loggen [-n LINES] [-seed N] [-heavy] [-start TIME] [-gap SECONDS] [-o FILE]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	start, err := time.Parse(time.RFC3339, *startS)
	if flag.NArg() > 0 || *n < 0 || err != nil || *gap <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*n, *seed, *heavy, start, *gap, *out); err != nil {
		fmt.Fprintf(os.Stderr, "loggen: %v\n", err)
		os.Exit(1)
	}
}

func run(n int, seed uint64, heavy bool, start time.Time, gap float64, path string) error {
	var w io.Writer = os.Stdout
	var f *os.File
	if path != "-" {
		var err error
		if f, err = os.Create(path); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	g := newGenerator(seed, start, heavy)
	g.gap = gap
	if err := g.write(bw, n); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		return f.Close()
	}
	return nil
}
