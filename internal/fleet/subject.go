package fleet

import (
	"net/netip"
	"strconv"
	"strings"
)

// Subjects and streams. Each node publishes under its own public key, and
// each stream keeps one message per subject: the latest word of one node
// on one target (a revocation replaces the ban), so a node that joins late
// reads what is in force, and N nodes' agreement on a target is N
// messages.
//
//	<prefix>.dec.<node key>.<target>       ban, revoke   stream <PREFIX>_DECISIONS
//	<prefix>.sig.<node key>.<kind>.<key>   signals       stream <PREFIX>_SIGNALS

func decisionsStream(prefix string) string { return strings.ToUpper(prefix) + "_DECISIONS" }
func signalsStream(prefix string) string   { return strings.ToUpper(prefix) + "_SIGNALS" }

// subject returns where m is published by node.
func subject(prefix, node string, m Message) string {
	switch m.Kind {
	case KindBan, KindRevoke:
		return prefix + ".dec." + node + "." + m.Key()
	default:
		return prefix + ".sig." + node + "." + string(m.Kind) + "." + m.Key()
	}
}

// nodeOfSubject returns the node key a subject names, "" if none.
func nodeOfSubject(prefix, subj string) string {
	rest, ok := strings.CutPrefix(subj, prefix+".")
	if !ok {
		return ""
	}
	_, rest, ok = strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	node, _, _ := strings.Cut(rest, ".")
	return node
}

// targetToken writes a prefix as one subject token: no dots, colons or
// slashes ("192-0-2-0_24", "2001-db8----_32").
func targetToken(p netip.Prefix) string {
	a := strings.Map(func(r rune) rune {
		if r == '.' || r == ':' {
			return '-'
		}
		return r
	}, p.Addr().String())
	return a + "_" + strconv.Itoa(p.Bits())
}
