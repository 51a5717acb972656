// Package smarthost hands mail Rampart writes (abuse reports, postmaster
// summaries, action digests) to a configured relay over SMTP: STARTTLS or
// TLS from the first byte, AUTH PLAIN only inside TLS (or to loopback),
// one message per connection. It is never the trap: the trap delivers
// nothing, and the configuration refuses a smarthost that is one of its
// listeners.
package smarthost

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Security is how the connection to the relay is protected.
type Security string

const (
	StartTLS Security = "starttls" // plain, then STARTTLS, required (port 587, 25)
	TLS      Security = "tls"      // TLS from the first byte (port 465)
	None     Security = "none"     // no TLS: a relay on loopback only
)

// Config says where and how to submit mail.
type Config struct {
	Addr     string // host:port
	Security Security
	Username string // "" : no AUTH
	Password string
	Hostname string        // said in EHLO; "": this host's name
	Timeout  time.Duration // for a whole submission; zero: 60 s
	// TLSConfig replaces the default (the system's roots, the server name
	// from Addr): tests trust their own CA here.
	TLSConfig *tls.Config
}

// Mailer submits mail to one relay. Its methods are safe for concurrent
// use: each Send is a connection of its own.
type Mailer struct{ cfg Config }

// New returns a Mailer for cfg.
func New(cfg Config) *Mailer {
	if cfg.Security == "" {
		cfg.Security = StartTLS
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	return &Mailer{cfg: cfg}
}

// Addr is the relay's address.
func (m *Mailer) Addr() string { return m.cfg.Addr }

// Send submits msg (a whole message, CRLF line ends) from from to each
// address of to. A refusal is an *smtp.SMTPError (Temporary tells a 4xx
// from a 5xx); anything else failed on the way.
func (m *Mailer) Send(ctx context.Context, from string, to []string, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smarthost %q: %w", m.cfg.Addr, err)
	}
	tc := m.cfg.TLSConfig
	if tc == nil {
		tc = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	} else if tc.ServerName == "" {
		tc = tc.Clone()
		tc.ServerName = host
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Addr)
	if err != nil {
		return fmt.Errorf("smarthost %s: %w", m.cfg.Addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	var c *smtp.Client
	switch m.cfg.Security {
	case TLS:
		c = smtp.NewClient(tls.Client(conn, tc))
	case None:
		c = smtp.NewClient(conn)
	default:
		c, err = smtp.NewClientStartTLS(conn, tc)
		if err != nil {
			conn.Close()
			return fmt.Errorf("smarthost %s: STARTTLS: %w", m.cfg.Addr, err)
		}
	}
	defer c.Close()
	if err := c.Hello(m.cfg.Hostname); err != nil {
		return fmt.Errorf("smarthost %s: EHLO: %w", m.cfg.Addr, err)
	}
	if m.cfg.Username != "" {
		if _, isTLS := c.TLSConnectionState(); !isTLS && !loopback(host) {
			return fmt.Errorf("smarthost %s: refusing to send a password without TLS", m.cfg.Addr)
		}
		if err := c.Auth(sasl.NewPlainClient("", m.cfg.Username, m.cfg.Password)); err != nil {
			return fmt.Errorf("smarthost %s: AUTH: %w", m.cfg.Addr, err)
		}
	}
	if err := c.SendMail(from, to, bytes.NewReader(msg)); err != nil {
		return fmt.Errorf("smarthost %s: %w", m.cfg.Addr, err)
	}
	c.Quit()
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Temporary reports whether sending again later may succeed: a 4xx
// refusal or a failure to reach the relay, not a 5xx.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	return true
}
