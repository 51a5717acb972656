package config

import (
	"encoding/base64"
	"net/netip"
	"net/url"
	"strings"

	"github.com/nats-io/nkeys"
)

// FleetTrusts are the trust levels a fleet peer can have.
var FleetTrusts = []string{"ban", "quorum", "suspect", "ignore"}

// checkFleet checks [fleet] and [api].
func (c *Config) checkFleet() error {
	f := c.Fleet
	if err := c.checkAbsPaths(keyValue{"fleet.seed_file", f.SeedFile}, keyValue{"fleet.cluster_secret_file", f.ClusterSecretFile},
		keyValue{"fleet.store_dir", f.StoreDir}); err != nil {
		return err
	}
	if f.Enabled && f.SeedFile == "" {
		return c.errorf("fleet.enabled", "the fleet is enabled but seed_file is not set (rampart fleet keygen writes one)")
	}
	for _, s := range f.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return c.errorf("fleet.servers", "key \"servers\": %q is not a nats:// or tls:// URL", s)
		}
	}
	if err := c.checkAddrPorts(keyValue{"fleet.listen", f.Listen}, keyValue{"fleet.cluster_listen", f.ClusterListen}); err != nil {
		return err
	}
	for _, r := range f.Routes {
		if _, err := netip.ParseAddrPort(r); err != nil {
			return c.errorf("fleet.routes", "key \"routes\": %q is not an address:port", r)
		}
	}
	if len(f.Servers) > 0 && (f.ClusterListen != "" || len(f.Routes) > 0) {
		return c.errorf("fleet.servers", "key \"servers\": an external cluster and the embedded server's cluster_listen/routes exclude each other")
	}
	if len(f.Routes) > 0 && f.ClusterListen == "" {
		return c.errorf("fleet.routes", "key \"routes\": routes need cluster_listen")
	}
	if f.Enabled && f.ClusterListen != "" && f.ClusterSecretFile == "" {
		return c.errorf("fleet.cluster_listen", "key \"cluster_listen\": a cluster needs cluster_secret_file")
	}
	names, keys := map[string]bool{}, map[string]bool{}
	for i, p := range f.Peers {
		if p.Name == "" || names[p.Name] {
			return c.errorf("fleet.peers", "peer %d: name %q is empty or used twice", i+1, p.Name)
		}
		if !nkeys.IsValidPublicUserKey(p.Key) || keys[p.Key] {
			return c.errorf("fleet.peers", "peer %q: key %q is not a public user NKey (U...) or is used twice", p.Name, p.Key)
		}
		if p.Trust != "" && !slicesContains(FleetTrusts, p.Trust) {
			return c.errorf("fleet.peers", "peer %q: trust %q is not one of %s", p.Name, p.Trust, strings.Join(FleetTrusts, ", "))
		}
		names[p.Name], keys[p.Key] = true, true
	}
	if err := c.checkAddrPorts(keyValue{"api.listen", c.API.Listen}); err != nil {
		return err
	}
	if c.API.Listen != "" && len(c.API.KeyFiles) == 0 {
		return c.errorf("api.listen", "key \"listen\": the API is on but key_files names no key")
	}
	for name, path := range c.API.KeyFiles {
		if !strings.HasPrefix(path, "/") {
			return c.errorf("api.key_files", "bouncer %q: %q is not an absolute path", name, path)
		}
	}
	return c.checkFeed()
}

// checkFeed checks [feed].
func (c *Config) checkFeed() error {
	f := c.Feed
	if err := c.checkAbsPaths(keyValue{"feed.cert_file", f.CertFile}, keyValue{"feed.key_file", f.KeyFile},
		keyValue{"feed.signing_key_file", f.SigningKeyFile}); err != nil {
		return err
	}
	if err := c.checkAddrPorts(keyValue{"feed.listen", f.Listen}); err != nil {
		return err
	}
	if f.Listen != "" && (f.CertFile == "" || f.KeyFile == "" || f.SigningKeyFile == "") {
		return c.errorf("feed.listen", "key \"listen\": a feed needs cert_file, key_file and signing_key_file")
	}
	names := map[string]bool{}
	for i, s := range f.Subscribe {
		if s.Name == "" || names[s.Name] {
			return c.errorf("feed.subscribe", "subscription %d: name %q is empty or used twice", i+1, s.Name)
		}
		names[s.Name] = true
		if u, err := url.Parse(s.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			return c.errorf("feed.subscribe", "subscription %q: url %q is not an https:// URL", s.Name, s.URL)
		}
		if b, err := base64.StdEncoding.DecodeString(s.PublicKey); err != nil || len(b) != 32 {
			return c.errorf("feed.subscribe", "subscription %q: public_key is not a base64 Ed25519 public key", s.Name)
		}
		if s.Trust != "" && s.Trust != "ban" && s.Trust != "suspect" {
			return c.errorf("feed.subscribe", "subscription %q: trust %q is not ban or suspect", s.Name, s.Trust)
		}
		if s.CAFile != "" && !strings.HasPrefix(s.CAFile, "/") {
			return c.errorf("feed.subscribe", "subscription %q: ca_file %q is not an absolute path", s.Name, s.CAFile)
		}
		if s.Every < 0 || (s.Every > 0 && s.Every.D() < 1e9) || s.MaxAge < 0 || s.MaxBytes < 0 || s.MaxBytes > 1<<30 {
			return c.errorf("feed.subscribe", "subscription %q: every must be 1s or more, max_age positive, max_bytes up to 1 GiB", s.Name)
		}
	}
	return nil
}
