package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rampart-dev/rampart/internal/daemon"
)

const abuseHelp = `
Abuse reports (docs/reporting.md): what the reporters of [reporting] have
queued, sent, or hold for review ([reporting] mode = "review").

  rampart abuse list [--state S[,S]] [--reporter R] [-n N]
                                 reports, newest first; states: review,
                                 pending, sending, sent, failed, rejected,
                                 dry-run
  rampart abuse show ID          one report: its subject and exactly what
                                 it sends (secrets left out)
  rampart abuse approve ID...    send reports held for review (--all: every one)
  rampart abuse reject ID...     never send them (--all: every one)

Add --json to list and show for the documented JSON.`

func runAbuse(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("abuse", "list|show ID|approve ID...|reject ID... [--all] [--json]", abuseHelp, stderr)
	connect := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("n", 50, "list at most `N` reports (0: all)")
	state := fs.String("state", "", "list only reports in these `states` (comma-separated)")
	reporter := fs.String("reporter", "", "list only this `reporter`'s reports")
	all := fs.Bool("all", false, "approve or reject every report held for review")
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usagef("which? list, show ID, approve ID... or reject ID...")
	}
	var ids []int64
	for _, w := range words[1:] {
		n, err := parseID(w, "report")
		if err != nil {
			return err
		}
		ids = append(ids, n)
	}
	switch words[0] {
	case "list":
		if len(ids) > 0 {
			return usagef("list takes no argument")
		}
	case "show":
		if len(ids) != 1 {
			return usagef("show needs one report ID (see rampart abuse list)")
		}
	case "approve", "reject":
		if len(ids) == 0 && !*all {
			return usagef("%s needs report IDs, or --all", words[0])
		}
		if len(ids) > 0 && *all {
			return usagef("give report IDs or --all, not both")
		}
	default:
		return usagef("unknown abuse command %q: list, show, approve or reject", words[0])
	}
	c, err := connect()
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch words[0] {
	case "list":
		var states []string
		if *state != "" {
			states = strings.Split(*state, ",")
		}
		n := *limit
		if n == 0 {
			n = -1
		}
		rs, err := c.AbuseReports(ctx, states, *reporter, n)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, rs)
		}
		tw := newTable(stdout, "ID\tREPORTER\tKIND\tSTATE\tCREATED\tSENT\tTARGET\tDESTINATION")
		for _, r := range rs {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Reporter, r.Kind, r.State, stamp(r.Created), stamp(r.Sent),
				quoteUser(r.Target), quoteUser(r.Destination))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d reports\n", len(rs))
	case "show":
		r, err := c.AbuseReport(ctx, ids[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, r)
		}
		showReport(stdout, r)
	case "approve", "reject":
		changed, err := c.ReviewReports(ctx, daemon.ReviewRequest{IDs: ids, All: *all, Approve: words[0] == "approve"})
		if err != nil {
			return err
		}
		verb := "rejected"
		if words[0] == "approve" {
			verb = "approved"
		}
		fmt.Fprintf(stdout, "%d reports %s\n", len(changed), verb)
		if len(ids) > len(changed) {
			fmt.Fprintf(stderr, "note: %d of the reports named were not held for review (see rampart abuse list)\n", len(ids)-len(changed))
		}
	}
	return nil
}

func showReport(w io.Writer, r daemon.AbuseReport) {
	fmt.Fprintf(w, "Report %d: %s %s report of %s, %s\n", r.ID, r.Reporter, r.Kind, quoteUser(r.Target), r.State)
	fmt.Fprintf(w, "Created:     %s\n", stamp(r.Created))
	if !r.Sent.IsZero() {
		fmt.Fprintf(w, "Sent:        %s to %s (%s)\n", stamp(r.Sent), quoteUser(r.Destination), quoteUser(r.Receipt))
	} else if r.Destination != "" {
		fmt.Fprintf(w, "Destination: %s\n", quoteUser(r.Destination))
	}
	if r.Attempts > 0 {
		fmt.Fprintf(w, "Attempts:    %d\n", r.Attempts)
	}
	if r.LastError != "" {
		fmt.Fprintf(w, "Last error:  %s\n", quoteUser(r.LastError))
	}
	if r.Render != "" {
		fmt.Fprintf(w, "\nWhat it sends:\n\n%s\n", safeText(r.Render))
	}
}

// safeText shows control characters but line breaks and tabs as \xNN: a
// report quotes what spammers wrote.
func safeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r == '\r':
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// printEvidence writes status's evidence, reporting and actions lines.
func printEvidence(w io.Writer, st daemon.Status) {
	if e := st.Evidence; e != nil {
		fmt.Fprintf(w, "evidence: %d messages read, %d indicators, %d parts unreadable, %d saves failed\n", e.Messages, e.Indicators, e.Problems, e.Failed)
	}
	if r := st.Reporting; r != nil {
		for _, rep := range r.Reporters {
			fmt.Fprintf(w, "reporting %s (%s): %d queued, %d sent, %d failed, %d retried, %d rate-limited, %d duplicates; %d held for review, %d pending",
				rep.Name, rep.Mode, rep.Queued, rep.Sent, rep.Failed, rep.Retried, rep.Limited, rep.Duplicates, rep.Review, rep.Pending)
			if !rep.PausedUntil.IsZero() {
				fmt.Fprintf(w, "; paused until %s", stamp(rep.PausedUntil))
			}
			fmt.Fprintln(w)
		}
		if r.Dropped > 0 {
			fmt.Fprintf(w, "reporting: %d bans not reported (the intake was full)\n", r.Dropped)
		}
	}
	for _, a := range st.Actions {
		fmt.Fprintf(w, "action %s (%s): %d done, %d failed, %d dropped (queue full), %d waiting\n", a.Name, a.Type, a.Done, a.Failed, a.Dropped, a.Waiting)
	}
}
