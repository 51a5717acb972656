package fleet

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure the embedded NATS server.
type ServerOptions struct {
	Name string // unique in the cluster (the node's name)
	// Listen is the client listener ("host:port"); empty: a random
	// loopback port (the node itself connects in-process).
	Listen string
	// ClusterListen is the route listener ("host:port"); empty: a server
	// of its own, no cluster.
	ClusterListen string
	// Routes are the other servers' route addresses ("host:port").
	Routes []string
	// ClusterSecret authenticates the routes (every server has the same).
	ClusterSecret string
	StoreDir      string   // JetStream's files
	MaxStore      int64    // bytes of JetStream file storage; 0: 1 GiB
	Users         []string // public NKeys allowed to connect (the fleet's nodes)
	Prefix        string   // subject prefix; a user may publish only under its own key
	Logger        *slog.Logger
}

// clusterName is the NATS cluster name of every Rampart fleet.
const clusterName = "rampart"

// routeUser is the route's user name; the secret is its password.
const routeUser = "rampart"

// StartServer starts an embedded NATS server with JetStream and waits until
// it takes connections. Shutdown stops it.
func StartServer(o ServerOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName:            o.Name,
		JetStream:             true,
		StoreDir:              o.StoreDir,
		JetStreamMaxMemory:    64 << 20,
		JetStreamMaxStore:     o.MaxStore,
		NoSigs:                true,
		NoLog:                 o.Logger == nil,
		MaxPayload:            64 << 10,
		DisableShortFirstPing: true,
	}
	if opts.JetStreamMaxStore <= 0 {
		opts.JetStreamMaxStore = 1 << 30
	}
	if o.Listen == "" {
		// The node connects in-process; the server still needs a client
		// listener for its routes to start: a random loopback port.
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	} else {
		host, port, err := splitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	for _, u := range o.Users {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: u, Permissions: permissions(o.Prefix, u)})
	}
	if len(opts.Nkeys) == 0 {
		return nil, errors.New("no node keys: nobody could connect")
	}
	if o.ClusterListen != "" {
		if o.ClusterSecret == "" {
			return nil, errors.New("a cluster needs a secret")
		}
		host, port, err := splitHostPort(o.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: clusterName, Host: host, Port: port,
			Username: routeUser, Password: o.ClusterSecret, NoAdvertise: true, AuthTimeout: 2}
		for _, r := range o.Routes {
			if _, _, err := splitHostPort(r); err != nil {
				return nil, fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: r, User: url.UserPassword(routeUser, o.ClusterSecret)})
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, err
	}
	if o.Logger != nil {
		s.SetLoggerV2(natsLog{o.Logger.With("component", "nats")}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, errors.New("embedded NATS server not ready within 30s")
	}
	return s, nil
}

// permissions let a node publish only under its own key (and use the
// JetStream API), and receive only on inboxes.
func permissions(prefix, key string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			prefix + ".dec." + key + ".>", prefix + ".sig." + key + ".>", "$JS.API.>", "_INBOX.>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, port, nil
}

// natsLog passes the server's log to slog: notices at debug level (the
// server is chatty at start), warnings and errors as such.
type natsLog struct{ l *slog.Logger }

func (n natsLog) Noticef(f string, v ...any) { n.l.Debug(fmt.Sprintf(f, v...)) }
func (n natsLog) Warnf(f string, v ...any)   { n.l.Warn(fmt.Sprintf(f, v...)) }
func (n natsLog) Fatalf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLog) Errorf(f string, v ...any)  { n.l.Error(fmt.Sprintf(f, v...)) }
func (n natsLog) Debugf(f string, v ...any)  {}
func (n natsLog) Tracef(f string, v ...any)  {}
