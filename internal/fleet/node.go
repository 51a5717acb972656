package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Options configure a Node.
type Options struct {
	Name string        // a label for logs and peers' origins
	Key  nkeys.KeyPair // the node's identity (a user NKey with its seed)
	// URLs are an external NATS cluster's client URLs; ignored with Server.
	URLs []string
	// Server is the embedded server to connect to in-process, if any.
	Server *server.Server
	Prefix string // subject prefix; "" means "rampart"
	// Replicas of each stream; 0 means 1.
	Replicas int
	// MaxBytes bounds each stream; 0 means 512 MiB. The oldest messages
	// go first.
	MaxBytes int64
	// Policy judges peers' messages; nil drops them all.
	Policy *Policy
	// Handle receives each verified message from a peer with its verdict
	// (never Drop) and until when it holds (zero: until revoked). It runs
	// on the consumer's goroutine: messages are handled in stream order.
	Handle func(m Message, peer Peer, v Verdict, until time.Time)
	// Outbox bounds the messages waiting to be published; 0 means 100,000.
	// Past it the oldest are dropped (and counted).
	Outbox int
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Stats are a node's counters.
type Stats struct {
	Connected   bool   `json:"connected"`
	Streams     bool   `json:"streams"` // both streams are readable
	Published   uint64 `json:"published"`
	PublishErrs uint64 `json:"publish_errors"`
	Queued      int    `json:"queued"`
	Dropped     uint64 `json:"dropped"` // outbox overflow or expired before sent
	Received    uint64 `json:"received"`
	Rejected    uint64 `json:"rejected"` // bad signature, size, fields or subject
	Ignored     uint64 `json:"ignored"`  // own, expired, or from untrusted nodes
}

// Node is this daemon's member of a fleet.
type Node struct {
	opt Options
	pub string
	log *slog.Logger

	mu     sync.Mutex
	outbox []Message
	wake   chan struct{}

	connected, streams              atomic.Bool
	published, publishErrs, dropped atomic.Uint64
	received, rejected, ignored     atomic.Uint64
}

// New checks opt and returns a Node; Run connects it.
func New(opt Options) (*Node, error) {
	if opt.Key == nil {
		return nil, errors.New("fleet: no node key")
	}
	pub, err := opt.Key.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("fleet: the node key is not a user NKey (nk -gen user)")
	}
	if opt.Server == nil && len(opt.URLs) == 0 {
		return nil, errors.New("fleet: no servers and no embedded server")
	}
	if opt.Prefix == "" {
		opt.Prefix = "rampart"
	}
	if opt.Replicas <= 0 {
		opt.Replicas = 1
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 512 << 20
	}
	if opt.Outbox <= 0 {
		opt.Outbox = 100_000
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Node{opt: opt, pub: pub, log: opt.Logger, wake: make(chan struct{}, 1)}, nil
}

// PublicKey is the node's public NKey.
func (n *Node) PublicKey() string { return n.pub }

// Publish queues m to be shared; it never blocks. Messages wait in the
// outbox while the fleet cannot be reached and go out when it can.
func (n *Node) Publish(ms ...Message) {
	if len(ms) == 0 {
		return
	}
	n.mu.Lock()
	n.outbox = append(n.outbox, ms...)
	if over := len(n.outbox) - n.opt.Outbox; over > 0 {
		n.outbox = append(n.outbox[:0:0], n.outbox[over:]...)
		n.dropped.Add(uint64(over))
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	q := len(n.outbox)
	n.mu.Unlock()
	return Stats{Connected: n.connected.Load(), Streams: n.streams.Load(), Published: n.published.Load(),
		PublishErrs: n.publishErrs.Load(), Queued: q, Dropped: n.dropped.Load(), Received: n.received.Load(),
		Rejected: n.rejected.Load(), Ignored: n.ignored.Load()}
}

// Run connects to the fleet and shares until ctx ends. It returns only
// then (nil), or at once on an error no retry can mend. While the fleet
// cannot be reached it keeps trying; the daemon defends alone meanwhile.
func (n *Node) Run(ctx context.Context) error {
	opts := []nats.Option{
		nats.Name("rampart " + n.opt.Name),
		nats.Nkey(n.pub, n.opt.Key.Sign),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.ConnectHandler(func(*nats.Conn) { n.connected.Store(true); n.log.Info("fleet: connected") }),
		nats.ReconnectHandler(func(*nats.Conn) { n.connected.Store(true); n.log.Info("fleet: reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.connected.Store(false)
			n.log.Warn("fleet: disconnected; defending alone until the fleet is back", "err", err)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { n.log.Debug("fleet: async error", "err", err) }),
	}
	url := ""
	if n.opt.Server != nil {
		opts = append(opts, nats.InProcessServer(n.opt.Server))
	} else {
		url = strings.Join(n.opt.URLs, ",")
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	defer nc.Close()
	if nc.IsConnected() {
		n.connected.Store(true)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(5*time.Second), jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	var wg sync.WaitGroup
	ready := [2]atomic.Bool{}
	for i, stream := range []string{decisionsStream(n.opt.Prefix), signalsStream(n.opt.Prefix)} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.consume(ctx, js, stream, func(ok bool) {
				ready[i].Store(ok)
				n.streams.Store(ready[0].Load() && ready[1].Load())
			})
		}()
	}
	n.publishLoop(ctx, js)
	wg.Wait()
	return nil
}

// streamConfig is the configuration of stream name.
func (n *Node) streamConfig(name string) jetstream.StreamConfig {
	c := jetstream.StreamConfig{
		Name:              name,
		Storage:           jetstream.FileStorage,
		Replicas:          n.opt.Replicas,
		MaxMsgsPerSubject: 1,
		MaxBytes:          n.opt.MaxBytes,
		Discard:           jetstream.DiscardOld,
		Duplicates:        2 * time.Minute,
		AllowMsgTTL:       true,
		MaxMsgSize:        MaxMessage + 1024,
	}
	if name == decisionsStream(n.opt.Prefix) {
		c.Subjects = []string{n.opt.Prefix + ".dec.>"}
	} else {
		c.Subjects = []string{n.opt.Prefix + ".sig.>"}
		c.MaxAge = maxSignalTTL
	}
	return c
}

// consume reads stream from its start (what is retained is what is in
// force: expired messages are gone by their TTL) and then follows it; the
// ordered consumer resumes after the last message read when the
// connection comes back. setReady reports whether the stream is read.
func (n *Node) consume(ctx context.Context, js jetstream.JetStream, stream string, setReady func(bool)) {
	wait := time.Second
	for ctx.Err() == nil {
		err := n.consumeOnce(ctx, js, stream, setReady)
		setReady(false)
		if ctx.Err() != nil {
			return
		}
		n.log.Debug("fleet: stream not readable; retrying", "stream", stream, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Second)
	}
}

func (n *Node) consumeOnce(ctx context.Context, js jetstream.JetStream, stream string, setReady func(bool)) error {
	// A JetStream API request made while the cluster elects its leaders
	// can go unanswered: give up on it soon and ask again (consume waits
	// 1 to 5 s in between), rather than wait 10 s for each lost one.
	actx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	if _, err := js.Stream(actx, stream); errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(actx, n.streamConfig(stream)); err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("create stream: %w", err)
		}
	} else if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(actx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { n.receive(m.Subject(), m.Data(), m.Headers().Get(sigHeader)) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			n.log.Debug("fleet: consumer", "stream", stream, "err", err)
		}))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	setReady(true)
	n.log.Info("fleet: reading stream", "stream", stream)
	select {
	case <-ctx.Done():
	case <-cc.Closed():
	}
	cc.Stop()
	return errors.New("consumer closed")
}

// sigHeader carries a message's signature.
const sigHeader = "Rampart-Sig"

// receive verifies and judges one message and hands it to Handle.
func (n *Node) receive(subj string, data []byte, sig string) {
	n.received.Add(1)
	node := nodeOfSubject(n.opt.Prefix, subj)
	if node == n.pub {
		n.ignored.Add(1) // its own, back from the stream: nothing to verify
		return
	}
	now := n.opt.Now()
	m, err := Verify(Signed{Data: data, Sig: sig}, now)
	if err == nil && node != m.Node {
		err = bad("published by %s under another node's subject", m.Node)
	}
	if err != nil {
		n.rejected.Add(1)
		n.log.Debug("fleet: message rejected", "subject", subj, "err", err)
		return
	}
	if m.Node == n.pub || n.opt.Policy == nil {
		n.ignored.Add(1)
		return
	}
	peer, _ := n.opt.Policy.Peer(m.Node)
	v, until := n.opt.Policy.Judge(m, now)
	if v == Drop {
		n.ignored.Add(1)
		return
	}
	if n.opt.Handle != nil {
		n.opt.Handle(m, peer, v, until)
	}
}

// publishLoop sends the outbox in batches until ctx ends; what the fleet
// did not acknowledge goes back to the front of the outbox and is retried
// after a pause (the streams deduplicate what did arrive).
func (n *Node) publishLoop(ctx context.Context, js jetstream.JetStream) {
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-retry.C:
		}
		for ctx.Err() == nil {
			n.mu.Lock()
			batch := n.outbox[:min(len(n.outbox), 2048)]
			n.outbox = n.outbox[len(batch):]
			n.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if failed := n.send(ctx, js, batch); len(failed) > 0 {
				n.mu.Lock()
				n.outbox = append(failed, n.outbox...)
				n.mu.Unlock()
				break // wait for the next tick
			}
		}
	}
}

// send publishes batch and returns what was not acknowledged.
func (n *Node) send(ctx context.Context, js jetstream.JetStream, batch []Message) []Message {
	now := n.opt.Now()
	type pending struct {
		m Message
		f jetstream.PubAckFuture
	}
	var sent []pending
	var failed []Message
	for i, m := range batch {
		if m.Expired(now) {
			n.dropped.Add(1)
			continue
		}
		s, signed, err := Sign(m, n.opt.Key, n.opt.Name)
		if err != nil {
			n.dropped.Add(1)
			n.log.Warn("fleet: message not sent", "err", err)
			continue
		}
		msg := &nats.Msg{Subject: subject(n.opt.Prefix, n.pub, signed), Data: s.Data, Header: nats.Header{}}
		msg.Header.Set(sigHeader, s.Sig)
		popts := []jetstream.PublishOpt{jetstream.WithMsgID(n.pub + "." + string(signed.Kind) + "." + signed.Key() + "." + strconv.FormatInt(signed.Start.UnixNano(), 36))}
		if !m.End.IsZero() {
			popts = append(popts, jetstream.WithMsgTTL(max(m.End.Sub(now).Round(time.Second)+time.Second, time.Second)))
		}
		f, err := js.PublishMsgAsync(msg, popts...)
		if err != nil {
			failed = append(failed, batch[i:]...)
			break
		}
		sent = append(sent, pending{m, f})
	}
	if len(sent) > 0 {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
	}
	for _, p := range sent {
		select {
		case <-p.f.Ok():
			n.published.Add(1)
			continue
		default:
		}
		failed = append(failed, p.m)
	}
	if len(failed) > 0 {
		n.publishErrs.Add(uint64(len(failed)))
		n.log.Debug("fleet: publishing failed; kept for later", "count", len(failed))
	}
	return failed
}
