package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
)

const trapHelp = `
The mail trap (docs/trap.md): the decoy accounts it learned, and the mail
trapped attackers sent, kept in quarantine and never delivered.

  rampart trap accounts          the trap accounts: tried by, logins, last seen
  rampart trap list [-n N]       quarantined messages, newest first
  rampart trap show ID           headers, envelope and a safe text rendering
                                 (links are listed, never opened; control
                                 characters are shown as \xNN)
  rampart trap export ID         the raw message (.eml) on standard output

Add --json to accounts, list and show for the documented JSON.`

func runTrap(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("trap", "accounts|list|show ID|export ID [--json] [-n N]", trapHelp, stderr)
	connect := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("n", 50, "list at most `N` messages (0: all)")
	words, err := parseWords(fs, args)
	if err != nil {
		return err
	}
	if len(words) == 0 {
		return usagef("which? accounts, list, show ID or export ID")
	}
	var id int64
	switch words[0] {
	case "accounts", "list":
		if len(words) != 1 {
			return usagef("%s takes no argument", words[0])
		}
	case "show", "export":
		if id, err = messageID(words); err != nil {
			return err
		}
	default:
		return usagef("unknown trap command %q: accounts, list, show ID or export ID", words[0])
	}
	c, err := connect()
	if err != nil {
		return err
	}
	ctx := context.Background()
	switch words[0] {
	case "accounts":
		as, err := c.TrapAccounts(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, as)
		}
		tw := newTable(stdout, "ACCOUNT\tADDRESSES\tLOGINS\tFIRST SEEN\tLAST SEEN")
		for _, a := range as {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", quoteUser(a.User), a.Addresses, a.Logins, stamp(a.FirstSeen), stamp(a.LastSeen))
		}
		tw.Flush()
		fmt.Fprintf(stdout, "%d trap accounts\n", len(as))
	case "list":
		ms, err := c.TrapMessages(ctx, *limit)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, ms)
		}
		tw := newTable(stdout, "ID\tRECEIVED\tCLIENT\tACCOUNT\tFROM\tRCPTS\tSIZE")
		for _, m := range ms {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%d\n", m.ID, stamp(m.Received), m.Client, quoteUser(m.Account), quoteUser(m.MailFrom), len(m.RcptTo), m.Size)
		}
		tw.Flush()
	case "show":
		m, err := c.TrapMessage(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeIndentedJSON(stdout, m)
		}
		fmt.Fprintf(stdout, "Message %d, queued as %s, received %s\n", m.ID, m.QueueID, stamp(m.Received))
		fmt.Fprintf(stdout, "Client:  %s (EHLO %s), port %d, TLS %v, logged in as %s\n", m.Client, quoteUser(m.Helo), m.Port, m.TLS, quoteUser(m.Account))
		if pl := m.Place; pl != (store.Place{}) {
			fmt.Fprintf(stdout, "Where:   %s\n", placeText(pl))
		}
		fmt.Fprintf(stdout, "Envelope from: %s\n", quoteUser(m.MailFrom))
		for _, r := range m.RcptTo {
			fmt.Fprintf(stdout, "Envelope to:   %s\n", quoteUser(r))
		}
		fmt.Fprintf(stdout, "Size: %d bytes", m.Size)
		if m.Truncated {
			fmt.Fprintf(stdout, " (%d kept)", len(m.Raw))
		}
		fmt.Fprintf(stdout, "\n\n%s", trap.Render(m.Raw))
	case "export":
		m, err := c.TrapMessage(ctx, id)
		if err != nil {
			return err
		}
		_, err = stdout.Write(m.Raw)
		return err
	}
	return nil
}

// messageID reads the message ID command words[0] takes.
func messageID(words []string) (int64, error) {
	if len(words) != 2 {
		return 0, usagef("%s needs a message ID (see rampart trap list)", words[0])
	}
	return parseID(words[1], "message")
}

// quoteUser shows a value an attacker chose: quoted when it holds
// anything but printable characters.
func quoteUser(s string) string {
	if s == "" {
		return "-"
	}
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, " \t") {
		return s
	}
	return q
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// placeText says where an address is, as the store placed it: "NL,
// AS64500 Example Hosting"; the organisation's name is the database's,
// quoted when it holds anything odd.
func placeText(p store.Place) string {
	var parts []string
	if p.Country != "" {
		parts = append(parts, quoteUser(p.Country))
	}
	if p.ASN != 0 {
		as := "AS" + strconv.FormatUint(uint64(p.ASN), 10)
		if p.Org != "" {
			as += " " + quoteUser(p.Org)
		}
		parts = append(parts, as)
	}
	return strings.Join(parts, ", ")
}
