// Command attacksim writes the logs of a Debian 12 mail and SSH server
// under attack by rotating botnets, mixed with its legitimate users, and
// the ground truth of every attempt, for bench/rotation.sh.
//
// It writes three files into the output directory: auth.log (sshd) and
// mail.log (postfix, dovecot), in the shapes Debian 12's OpenSSH 9.2,
// Postfix 3.7 and Dovecot 2.3 log with rsyslog's traditional format, and
// truth.jsonl, one object per attempt:
//
//	{"time": "RFC 3339", "ip": "...", "role": "attacker|legit",
//	 "scenario": "...", "service": "sshd|postfix|dovecot", "user": "...",
//	 "result": "failure|success|accepted"}
//
// An attempt is one password (or one recipient) a client submitted; its
// time is the second the server checked it. The output depends only on
// the flags: each scenario draws from its own random stream, derived from
// -seed and its name, so leaving a scenario out does not change the others.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"
)

// scenario is one group of clients: an attack or a kind of legitimate use.
type scenario struct {
	name string
	doc  string
	run  func(s *sim, r *rand.Rand, d *directory, scale float64)
}

var scenarios = []scenario{
	{"naive", "8 addresses brute-forcing SSH, SMTP AUTH and IMAP as fast as they can", naive},
	{"rotation", "3000 IPv4 addresses in 40 /24s, 1-2 attempts each, over 3 hours", rotation},
	{"slow", "300 scattered addresses, one attempt each every 20-40 minutes all day", slow},
	{"ipv6", "2000 addresses in three /64s, one attempt each, over 2 hours", ipv6},
	{"enum", "1500 addresses in 30 /24s probing recipients on port 25, over 2 hours", enum},
	{"relay-spray", "2 relays of a mail provider's pool spray SMTP AUTH passwords for an hour", relaySpray},
	{"neighbour", "6 infected hosts of a residential /24 that two real users share", neighbour},
	{"rotation16", "2500 IPv4 addresses in ~50 /24s of six /16s, 1-2 attempts each, over 3 hours", rotation16},
	{"legit-nat", "20 office users behind one NAT address, typos at arrival", legitNAT},
	{"legit-home", "12 users at home, 3 of them SSH admins", legitHome},
	{"legit-mobile", "8 phones on IPv6 with changing privacy addresses", legitMobile},
	{"legit-travel", "3 users mistyping their password once from a hotel", legitTravel},
	{"legit-relays", "two mail providers' relay pools delivering mail all day, 1 in 25 to a stale recipient", legitRelays},
	{"legit-neighbour", "2 users reading mail from the residential /24 of the neighbour scenario", legitNeighbour},
	{"legit-webmail", "6 users reading mail through a webmail provider's 12 egress addresses", legitWebmail},
}

func main() {
	out := flag.String("o", "bench/out/rotation", "output `dir`ectory")
	seed := flag.Uint64("seed", 1, "random `seed`; the same flags give the same files")
	startS := flag.String("start", "2025-03-10T06:00:00Z", "start of the simulated period (RFC 3339)")
	length := flag.Duration("duration", 12*time.Hour, "length of the attacks' period")
	warmup := flag.Duration("warmup", 24*time.Hour, "legitimate users only, for this long before -start (a running daemon has seen them before)")
	only := flag.String("scenarios", "all", "comma-separated `names` of scenarios to run (\"legit\" means every legit-* one)")
	scale := flag.Float64("scale", 1, "multiply the number of attacking addresses by `factor`")
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprintf(w, "usage: attacksim [-o DIR] [-seed N] [-scenarios LIST] [-scale F] [-start T] [-duration D] [-warmup D]\n\nScenarios:\n")
		for _, sc := range scenarios {
			fmt.Fprintf(w, "  %-13s %s\n", sc.name, sc.doc)
		}
		fmt.Fprintln(w)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, *seed, *startS, *length, *warmup, *only, *scale); err != nil {
		fmt.Fprintf(os.Stderr, "attacksim: %v\n", err)
		os.Exit(2)
	}
}

func run(out string, seed uint64, startS string, length, warmup time.Duration, only string, scale float64) error {
	start, err := time.Parse(time.RFC3339, startS)
	if err != nil {
		return fmt.Errorf("-start: %w", err)
	}
	if length <= 0 || scale <= 0 || warmup < 0 {
		return errors.New("-duration and -scale must be positive, -warmup not negative")
	}
	picked, err := selectScenarios(only)
	if err != nil {
		return err
	}
	s := generate(seed, start, length, warmup, picked, scale)
	if err := s.write(out); err != nil {
		return err
	}
	counts := map[string]int{}
	for _, a := range s.truth {
		counts[a.Scenario]++
	}
	fmt.Fprintf(os.Stderr, "attacksim: wrote %d auth.log and %d mail.log lines, %d attempts to %s (legitimate users from %s, attacks from %s to %s)\n",
		len(s.lines[authLog]), len(s.lines[mailLog]), len(s.truth), out, s.warm.Format(time.RFC3339), s.start.Format(time.RFC3339), s.end.Format(time.RFC3339))
	for _, sc := range picked {
		fmt.Fprintf(os.Stderr, "  %-13s %6d attempts\n", sc.name, counts[sc.name])
	}
	return nil
}

// selectScenarios parses -scenarios.
func selectScenarios(list string) ([]scenario, error) {
	if list == "all" || list == "" {
		return scenarios, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "legit" {
			for _, sc := range scenarios {
				if strings.HasPrefix(sc.name, "legit-") {
					want[sc.name] = true
				}
			}
			continue
		}
		if !slices.ContainsFunc(scenarios, func(sc scenario) bool { return sc.name == n }) {
			return nil, fmt.Errorf("unknown scenario %q (run with -h for the list)", n)
		}
		want[n] = true
	}
	var out []scenario
	for _, sc := range scenarios {
		if want[sc.name] {
			out = append(out, sc)
		}
	}
	return out, nil
}

// generate runs the scenarios. Each draws from its own random stream.
func generate(seed uint64, start time.Time, length, warmup time.Duration, picked []scenario, scale float64) *sim {
	s := newSim(start, length, warmup)
	d := newDirectory(rng(seed, "directory"))
	for _, sc := range picked {
		sc.run(s, rng(seed, sc.name), d, scale)
	}
	return s
}
