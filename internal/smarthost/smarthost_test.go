package smarthost_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/rampart-dev/rampart/internal/smarthost"
	"github.com/rampart-dev/rampart/internal/smarthost/smarthosttest"
)

const msg = "From: reports@rampart.test\r\nTo: abuse@net.test\r\nSubject: report\r\n\r\nbody\r\n"

func TestSendSTARTTLSAuth(t *testing.T) {
	relay := smarthosttest.New(t, smarthosttest.Options{Username: "rampart", Password: "pw"})
	m := smarthost.New(smarthost.Config{Addr: relay.Addr, Username: "rampart", Password: "pw", TLSConfig: relay.ClientTLS, Hostname: "h.test"})
	if err := m.Send(context.Background(), "reports@rampart.test", []string{"abuse@net.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := relay.Wait(t, 1, 5*time.Second)[0]
	if !got.TLS || got.User != "rampart" || got.From != "reports@rampart.test" || got.To[0] != "abuse@net.test" || !strings.HasSuffix(string(got.Data), "body\r\n") {
		t.Fatalf("relay got %+v", got)
	}
	// A wrong password is refused for good.
	bad := smarthost.New(smarthost.Config{Addr: relay.Addr, Username: "rampart", Password: "no", TLSConfig: relay.ClientTLS})
	if err := bad.Send(context.Background(), "r@rampart.test", []string{"a@net.test"}, []byte(msg)); err == nil || smarthost.Temporary(err) {
		t.Errorf("bad password: %v (temporary %v)", err, smarthost.Temporary(err))
	}
}

func TestSendRefusals(t *testing.T) {
	relay := smarthosttest.New(t, smarthosttest.Options{ImplicitTLS: true, Refuse: func(rcpt string) error {
		switch rcpt {
		case "later@net.test":
			return &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "mailbox busy"}
		case "never@net.test":
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		}
		return nil
	}})
	m := smarthost.New(smarthost.Config{Addr: relay.Addr, Security: smarthost.TLS, TLSConfig: relay.ClientTLS})
	ctx := context.Background()
	if err := m.Send(ctx, "r@rampart.test", []string{"later@net.test"}, []byte(msg)); !smarthost.Temporary(err) {
		t.Errorf("450: %v", err)
	}
	if err := m.Send(ctx, "r@rampart.test", []string{"never@net.test"}, []byte(msg)); err == nil || smarthost.Temporary(err) {
		t.Errorf("550: %v", err)
	}
	if err := m.Send(ctx, "r@rampart.test", []string{"ok@net.test"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if got := relay.Wait(t, 1, 5*time.Second); len(got) != 1 || !got[0].TLS {
		t.Fatalf("relay got %+v", got)
	}
	// An untrusted certificate is refused.
	untrusted := smarthost.New(smarthost.Config{Addr: relay.Addr, Security: smarthost.TLS, Timeout: 2 * time.Second})
	if err := untrusted.Send(ctx, "r@rampart.test", []string{"ok@net.test"}, []byte(msg)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v", err)
	}
}
