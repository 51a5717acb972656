package postfix

import (
	"fmt"
	"unicode/utf8"
)

// Action is an access(5) result, built here and rendered only by String:
// handlers never format wire text.
type Action struct {
	verb string // DUNNO, OK, REJECT, DEFER, DEFER_IF_PERMIT, HOLD, DISCARD, WARN, or "" for a numeric reply
	code string // "450 4.7.1" for a numeric reply
	text string
}

// Actions.
var (
	// Dunno: no opinion; Postfix goes on with the next restriction.
	Dunno = Action{verb: "DUNNO"}
	// OK: accept, skipping the remaining restrictions of this list.
	OK = Action{verb: "OK"}
)

// Reject refuses with Postfix's default permanent code (554 5.7.1 unless
// access_map_reject_code says otherwise) and text.
func Reject(text string) Action { return Action{verb: "REJECT", text: text} }

// Defer refuses temporarily (450 4.7.1 by default) with text.
func Defer(text string) Action { return Action{verb: "DEFER", text: text} }

// Reply answers with an explicit SMTP code ("550 5.7.1", "421 4.7.0") and text.
func Reply(code, text string) Action { return Action{code: code, text: text} }

// Warn logs text in Postfix's log and has no other effect.
func Warn(text string) Action { return Action{verb: "WARN", text: text} }

// String renders the action line without its newline: "action=DEFER text".
// Line breaks in text are replaced, so an answer is always one line.
func (a Action) String() string { return string(a.appendTo(nil)) }

// appendTo appends the action line, without its newline, to b.
func (a Action) appendTo(b []byte) []byte {
	b = append(b, "action="...)
	if a.code != "" {
		b = append(b, a.code...)
	} else {
		b = append(b, a.verb...)
	}
	if a.text != "" {
		b = append(b, ' ')
		for _, r := range a.text {
			if r == '\n' || r == '\r' || r < ' ' {
				r = ' '
			}
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// IsDunno reports whether a is DUNNO.
func (a Action) IsDunno() bool { return a.verb == "DUNNO" && a.code == "" }

// GoString shows an action in test failures.
func (a Action) GoString() string { return fmt.Sprintf("postfix.Action(%q)", a.String()) }
