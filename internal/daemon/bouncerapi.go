package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampart-dev/rampart/internal/bouncer"
	"github.com/rampart-dev/rampart/internal/config"
	"github.com/rampart-dev/rampart/internal/event"
)

// apiServer is [api]: the bouncer endpoints and blocklists (package
// bouncer), served until the daemon stops.
type apiServer struct {
	l   net.Listener
	srv *http.Server
	log *slog.Logger
}

// startAPI listens for [api]; nil when it is off. The keys are read now.
func (d *Daemon) startAPI(cfg *config.Config) (*apiServer, error) {
	if cfg.API.Listen == "" {
		return nil, nil
	}
	var keys []bouncer.Key
	names := make([]string, 0, len(cfg.API.KeyFiles))
	for name := range cfg.API.KeyFiles {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := os.ReadFile(cfg.API.KeyFiles[name])
		if err != nil {
			return nil, cfg.Errorf("api.key_files", "bouncer %q: %v", name, err)
		}
		k := strings.TrimSpace(string(b))
		if len(k) < 16 {
			return nil, cfg.Errorf("api.key_files", "bouncer %q: the key in %s needs 16 characters or more", name, cfg.API.KeyFiles[name])
		}
		keys = append(keys, bouncer.Key{Name: name, Secret: k})
	}
	l, err := net.Listen("tcp", cfg.API.Listen)
	if err != nil {
		return nil, cfg.Errorf("api.listen", "%v", err)
	}
	log := d.log.With("component", "api")
	h := bouncer.New(engineInForce{d}, keys, log).Handler()
	return &apiServer{log: log, l: l, srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}}, nil
}

func (a *apiServer) serve(ctx context.Context) {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		a.srv.Shutdown(sctx)
	}()
	if err := a.srv.Serve(a.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("api: serving failed", "err", err)
	}
}

// engineInForce reads the engine in force, across reloads.
type engineInForce struct{ d *Daemon }

func (e engineInForce) Active(now time.Time) []event.Decision {
	return e.d.currentPipe().Engine.Active(now)
}

func (e engineInForce) Banned(a netip.Addr, now time.Time) (event.Decision, bool) {
	return e.d.currentPipe().Engine.Banned(a, now)
}
