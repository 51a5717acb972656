package trap

import (
	"strings"
	"time"
)

// SEARCH is the decoy's own: INBOX is empty, so every search that
// Dovecot takes finds nothing, and go-imap knows fewer search keys than
// Dovecot (OLDER, FUZZY, X-GUID…) and words its refusals its own way.

// searchArity is how many arguments each of Dovecot's search keys takes
// (NOT, OR and FUZZY take keys, handled apart).
var searchArity = map[string]int{
	"ALL": 0, "ANSWERED": 0, "DELETED": 0, "DRAFT": 0, "FLAGGED": 0, "NEW": 0, "OLD": 0, "RECENT": 0, "SEEN": 0,
	"UNANSWERED": 0, "UNDELETED": 0, "UNDRAFT": 0, "UNFLAGGED": 0, "UNSEEN": 0, "SAVEDATESUPPORTED": 0, "INTHREAD": 0,
	"BCC": 1, "BODY": 1, "CC": 1, "FROM": 1, "KEYWORD": 1, "LARGER": 1, "SMALLER": 1, "SUBJECT": 1, "TEXT": 1, "TO": 1,
	"UID": 1, "UNKEYWORD": 1, "OLDER": 1, "YOUNGER": 1, "MODSEQ": 1, "X-GUID": 1, "X-MAILBOX": 1, "X-REAL-UID": 1,
	"X-BODY-FAST": 1, "X-TEXT-FAST": 1, "EMAILID": 1, "THREADID": 1,
	"BEFORE": 1, "ON": 1, "SINCE": 1, "SENTBEFORE": 1, "SENTON": 1, "SENTSINCE": 1,
	"SAVEDBEFORE": 1, "SAVEDON": 1, "SAVEDSINCE": 1, "X-SAVEDBEFORE": 1, "X-SAVEDON": 1, "X-SAVEDSINCE": 1,
	"HEADER": 2,
}

// searchDate are the keys whose argument is a date (d-MMM-yyyy).
var searchDate = map[string]bool{"BEFORE": true, "ON": true, "SINCE": true, "SENTBEFORE": true, "SENTON": true,
	"SENTSINCE": true, "SAVEDBEFORE": true, "SAVEDON": true, "SAVEDSINCE": true, "X-SAVEDBEFORE": true,
	"X-SAVEDON": true, "X-SAVEDSINCE": true}

// search answers SEARCH and UID SEARCH: nothing found, in ESEARCH form
// when RETURN asks for it.
func (c *imapConn) search(tag, name string, _ *argParser, args []imapArg) error {
	bad := func(msg string) error { return c.reply(tag, "BAD Error in IMAP command "+name+": "+msg+".") }
	// RETURN (…) asks for ESEARCH; RETURN (SAVE) alone keeps the result
	// for $ and says nothing.
	esearch, count, saveOnly := false, false, false
	if len(args) > 1 && args[0].kind == 'a' && strings.EqualFold(args[0].str, "RETURN") && args[1].kind == 'l' {
		esearch, saveOnly = true, len(args[1].list) > 0
		for _, o := range args[1].list {
			switch strings.ToUpper(o.str) {
			case "MIN", "MAX", "ALL":
				saveOnly = false
			case "COUNT":
				count, saveOnly = true, false
			case "SAVE":
			default:
				return bad("Unknown SEARCH return option")
			}
		}
		args = args[2:]
	}
	if len(args) > 0 && args[0].kind == 'a' && strings.EqualFold(args[0].str, "CHARSET") {
		if len(args) < 2 || args[1].kind == 'l' {
			return bad("Invalid charset argument")
		}
		if cs := strings.ToUpper(args[1].str); cs != "UTF-8" && cs != "US-ASCII" {
			return c.reply(tag, "NO [BADCHARSET] Unknown charset.")
		}
		args = args[2:]
	}
	if len(args) == 0 {
		return bad("Missing search parameters")
	}
	if msg := searchKeys(args); msg != "" {
		return bad(msg)
	}
	found := "* SEARCH"
	if esearch {
		found = `* ESEARCH (TAG "` + tag + `")`
		if name == "UID SEARCH" {
			found += " UID"
		}
		if count {
			found += " COUNT 0"
		}
	}
	if saveOnly {
		return c.reply(tag, "OK Search completed.")
	}
	return c.reply(tag, found, "OK Search completed.")
}

// searchKeys checks search keys; "" if they are all good, else Dovecot's
// complaint.
func searchKeys(args []imapArg) string {
	for i := 0; i < len(args); {
		next, msg := searchKey(args, i)
		if msg != "" {
			return msg
		}
		i = next
	}
	return ""
}

// searchKey checks the key at args[i] and returns where the next starts.
func searchKey(args []imapArg, i int) (int, string) {
	if i >= len(args) {
		return 0, "Missing argument"
	}
	a := args[i]
	switch a.kind {
	case 'l':
		if len(a.list) == 0 {
			return 0, "Missing argument"
		}
		return i + 1, searchKeys(a.list)
	case 's':
		return 0, "Unexpected string as search key: " + a.str
	}
	key := strings.ToUpper(a.str)
	switch key {
	case "NOT", "FUZZY":
		return searchKey(args, i+1)
	case "OR":
		j, msg := searchKey(args, i+1)
		if msg != "" {
			return 0, msg
		}
		return searchKey(args, j)
	}
	n, known := searchArity[key]
	switch {
	case !known && (isSeqSet(a.str) || strings.ContainsAny(a.str[:1], "0123456789*")):
		if !isSeqSet(a.str) {
			return 0, "Invalid messageset"
		}
		return i + 1, ""
	case !known:
		return 0, "Unknown argument " + a.str
	case i+n >= len(args):
		return 0, "Missing parameter for search key (for search key: " + key + ")"
	}
	for _, p := range args[i+1 : i+1+n] {
		if p.kind == 'l' {
			return 0, "Invalid parameter for search key (for search key: " + key + ")"
		}
	}
	if searchDate[key] {
		if _, err := time.Parse("2-Jan-2006", args[i+1].str); err != nil {
			return 0, "Invalid search date parameter"
		}
	}
	return i + 1 + n, ""
}
