package trapstore

import (
	"context"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/store"
	"github.com/rampart-dev/rampart/internal/trap"
)

// TestMessageFields: the store's message has the trap's fields and where
// the client is, nothing else, so fromTrap and toTrap lose nothing.
func TestMessageFields(t *testing.T) {
	names := func(v any) []string {
		var out []string
		for f := range reflect.TypeOf(v).Fields() {
			out = append(out, f.Name)
		}
		return out
	}
	got, want := names(store.Quarantined{}), append(names(trap.Message{}), "Place")
	if !slices.Equal(got, want) {
		t.Fatalf("store.Quarantined has %v, trap.Message and Place are %v: update fromTrap and toTrap", got, want)
	}
}

// TestQuarantinePlaced: a message the trap keeps is stored with where its
// client is, as the store's locator says, and reads back whole.
func TestQuarantinePlaced(t *testing.T) {
	ctx := context.Background()
	locate := func(a netip.Addr) store.Place {
		if a == netip.MustParseAddr("203.0.113.9") {
			return store.Place{Country: "CN", ASN: 64501, Org: "Far Away Telecom"}
		}
		return store.Place{}
	}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "rampart.db"), store.WithLocator(locate))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := Store{st}
	in := trap.Message{QueueID: "Q1", Received: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), Client: netip.MustParseAddr("203.0.113.9"),
		Port: 587, Helo: "spam.example", Account: "info", TLS: true, MailFrom: "a@spam.example", RcptTo: []string{"x@example.net"},
		Size: 5, Raw: []byte("hello")}
	id, err := s.Quarantine(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Message(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	in.ID = id
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("read back\n got %+v\nwant %+v", got, in)
	}
	q, err := st.QuarantineGet(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.Place{Country: "CN", ASN: 64501, Org: "Far Away Telecom"}); q.Place != want {
		t.Fatalf("stored place %+v, want %+v", q.Place, want)
	}
	cs, err := st.Captures(ctx, time.Time{}, time.Time{})
	if err != nil || len(cs) != 1 || cs[0].Place != q.Place {
		t.Fatalf("captures %+v, %v", cs, err)
	}
}
