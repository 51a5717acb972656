package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/postfixaudit"
)

const checkPostfixHelp = `
Read Postfix's effective configuration (postconf, postconf -M, postconf -P)
and report what leaves the server open to abuse, each with the line to
add and why: relaying for anyone (no reject_unauth_destination, mynetworks
too wide), AUTH on port 25 or before TLS, no HELO required, no connection,
AUTH or error limits, VRFY and unlisted recipients that let enumeration
through, no postscreen, and Rampart's policy hooks absent, misplaced,
failing closed or out of a chrooted smtpd's reach.

Exit status: 0 when nothing is flagged, 1 when something is (for CI), 2
when postconf cannot be run.`

func runCheckPostfix(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check-postfix", "[-c DIR] [--json]", checkPostfixHelp, stderr)
	dir := fs.String("c", "", "Postfix configuration `directory`, as postconf -c (default: Postfix's own)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := postfixaudit.Read(ctx, *dir, postfixaudit.Postconf)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	findings := postfixaudit.Check(cfg)
	where := cfg.Main["config_directory"]
	if *asJSON {
		out := struct {
			ConfigDirectory string                 `json:"config_directory"`
			Findings        []postfixaudit.Finding `json:"findings"`
		}{where, findings}
		if out.Findings == nil {
			out.Findings = []postfixaudit.Finding{}
		}
		if err := writeIndentedJSON(stdout, out); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			svc := ""
			if f.Service != "" {
				svc = " (master.cf " + f.Service + ")"
			}
			fmt.Fprintf(stdout, "%s: %s%s: %s\n  why: %s\n  add:\n", f.Level, f.ID, svc, f.Problem, f.Why)
			for _, l := range strings.Split(f.Fix, "\n") {
				fmt.Fprintf(stdout, "    %s\n", l)
			}
		}
		if len(findings) == 0 {
			fmt.Fprintf(stdout, "%s: nothing to flag\n", where)
		}
	}
	if len(findings) > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%s: %s", where, plural(len(findings), "finding"))}
	}
	return nil
}
