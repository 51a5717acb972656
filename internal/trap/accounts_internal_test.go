package trap

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/rampart-dev/rampart/internal/event"
)

// The names Accounts learns are copies: a name taken from a log line must
// not keep the whole line alive for as long as the name is known.
func TestAccountsCopyNames(t *testing.T) {
	a := NewAccounts(AccountsConfig{Addresses: 2, Max: 10, TTL: time.Hour, Passwords: DefaultPasswords()}, nil, nil)
	line := "Dec  2 08:46:41 mail dovecot: auth: passwd-file(office,203.0.113.9): unknown user " + strings.Repeat("x", 200)
	inLine := func(s string) bool {
		p, start := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(line)))
		return p >= start && p < start+uintptr(len(line))
	}
	name := func(u string) string { i := strings.Index(line, u); return line[i : i+len(u)] }
	at := time.Unix(1_700_000_000, 0)
	a.Observe(event.Event{Time: at, Kind: event.AuthSuccess, User: name("mail"), Addr: netip.MustParseAddr("192.0.2.1")})
	for i, addr := range []string{"203.0.113.9", "203.0.113.10"} {
		a.Observe(event.Event{Time: at.Add(time.Duration(i) * time.Second), Kind: event.UnknownUser, User: name("office"), Addr: netip.MustParseAddr(addr)})
		for u := range a.pending {
			if inLine(u) {
				t.Errorf("pending name %q points into the log line", u)
			}
		}
	}
	if len(a.accounts) != 1 {
		t.Fatalf("%d trap accounts, want office's", len(a.accounts))
	}
	for u, acc := range a.accounts {
		if inLine(u) || inLine(acc.User) {
			t.Errorf("trap account %q points into the log line", u)
		}
	}
	for u := range a.real {
		if inLine(u) {
			t.Errorf("real name %q points into the log line", u)
		}
	}
}
