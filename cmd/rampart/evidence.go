package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rampart-dev/rampart/internal/evidence"
)

const evidenceHelp = `
What the trap's quarantined mail carried (docs/reporting.md): links,
domains, senders, recipients and attachments, counted across messages.
Nothing is fetched or followed; values chosen by spammers are quoted when
they hold anything but printable characters.

  rampart evidence [list]        indicators, the most widespread first
      --kind K[,K]               only these kinds: url, domain, from,
                                 reply-to, return-path, recipient, contact,
                                 attachment-sha256, client, helo
      --message ID               only those quarantined message ID carried
  rampart evidence show ID       what message ID carried, part by part

Add --json for the documented JSON.`

func runEvidence(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("evidence", "[list [--kind K] [--message ID] [-n N] | show ID] [--json]", evidenceHelp, stderr)
	connect := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("n", 50, "list at most `N` indicators (0: all)")
	kind := fs.String("kind", "", "list only indicators of these `kinds` (comma-separated)")
	message := fs.Int64("message", 0, "list only the indicators message `ID` carried")
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		words = []string{"list"}
	}
	var id int64
	switch words[0] {
	case "list":
		if len(words) != 1 {
			return usagef("list takes no argument")
		}
	case "show":
		if id, err = messageID(words); err != nil {
			return err
		}
	default:
		return usagef("unknown evidence command %q: list or show ID", words[0])
	}
	c, err := connect()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if words[0] == "show" {
		r, err := c.MessageEvidence(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, r)
		}
		showEvidence(stdout, id, r)
		return nil
	}
	n := *limit
	if n == 0 {
		n = -1
	}
	inds, err := c.Indicators(ctx, *kind, n, *message)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeIndentedJSON(stdout, inds)
	}
	tw := newTable(stdout, "KIND\tMESSAGES\tFIRST SEEN\tLAST SEEN\tVALUE")
	for _, i := range inds {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", i.Kind, i.Messages, stamp(i.FirstSeen), stamp(i.LastSeen), quoteUser(i.Value))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d indicators\n", len(inds))
	return nil
}

// showEvidence prints what a message carried for people.
func showEvidence(w io.Writer, id int64, r evidence.Result) {
	fmt.Fprintf(w, "Message %d: %d parts\n", id, r.Parts)
	fmt.Fprintf(w, "Subject:     %s\n", quoteUser(r.Subject))
	fmt.Fprintf(w, "Message-ID:  %s\n", quoteUser(r.MessageID))
	if r.Mailer != "" {
		fmt.Fprintf(w, "Mailer:      %s\n", quoteUser(r.Mailer))
	}
	list := func(label string, vs []string) {
		if len(vs) == 0 {
			return
		}
		q := make([]string, len(vs))
		for i, v := range vs {
			q[i] = quoteUser(v)
		}
		fmt.Fprintf(w, "%-12s %s\n", label+":", strings.Join(q, ", "))
	}
	list("From", r.From)
	list("Reply-To", r.ReplyTo)
	list("Return-Path", r.ReturnPath)
	list("Contacts", r.Contacts)
	fmt.Fprintf(w, "Recipients:  %d\n", len(r.Recipients))
	if len(r.URLs) > 0 {
		fmt.Fprintf(w, "\nLinks (never opened):\n")
		for _, u := range r.URLs {
			var notes []string
			notes = append(notes, strings.Join(u.Where, ","))
			if u.Obfuscated {
				notes = append(notes, "obfuscated")
			}
			if u.Redirect != "" {
				notes = append(notes, u.Redirect)
			}
			if u.Target != "" {
				notes = append(notes, "to "+quoteUser(u.Target))
			}
			fmt.Fprintf(w, "  %s  (%s)\n", quoteUser(u.URL), strings.Join(notes, "; "))
		}
	}
	if len(r.Domains) > 0 {
		fmt.Fprintf(w, "\nDomains:\n")
		for _, d := range r.Domains {
			fmt.Fprintf(w, "  %s  (%s)\n", quoteUser(d.Name), strings.Join(d.Sources, ", "))
		}
	}
	if len(r.Attachments) > 0 {
		fmt.Fprintf(w, "\nAttachments:\n")
		for _, a := range r.Attachments {
			fmt.Fprintf(w, "  %s  %s  %d bytes  sha256 %s\n", quoteUser(a.Name), a.Type, a.Size, a.SHA256)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nCould not be read:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}
