package dovecot

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/policy"
)

// BenchmarkDovecotPolicy measures decisions over loopback HTTP/1.1
// keep-alive, as Dovecot's auth processes send them: parallel clients, each
// on its own connection, post an allow and then a successful report for
// logins from many addresses, to the handler behind a net/http server set
// up as the daemon sets it up, with a real engine.
func BenchmarkDovecotPolicy(b *testing.B) {
	cfg := engine.DefaultConfig(engine.Jail{Name: "dovecot", Services: []string{"dovecot"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour})
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	const auth = "Basic cmFtcGFydDpzZWNyZXQ="
	h := &Handler{Judge: &policy.Judge{Engine: e}, Auth: auth}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	go srv.Serve(l)
	defer srv.Close()
	reqs := make([][]byte, 2048)
	for i := range reqs {
		cmd, extra := "allow", ""
		if i%2 == 1 {
			cmd, extra = "report", `,"success":true,"policy_reject":false,"tls":true`
		}
		body := fmt.Sprintf(`{"device_id":"","login":"user%d@example.org","protocol":"imap","pwhash":"8f3a2b1c","remote":"%d.%d.%d.%d","session_id":"s%d"%s}`,
			i/2, 23+i%150, i>>8&255, i&255, 1+i%254, i, extra)
		reqs[i] = fmt.Appendf(nil, "POST /?command=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", cmd, auth, len(body), body)
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		i := int(next.Add(1)*998) &^ 1
		for pb.Next() {
			i++
			if _, err := c.Write(reqs[i%len(reqs)]); err != nil {
				b.Error(err)
				return
			}
			if err := readResponse(br); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// readResponse reads one HTTP/1.1 response with a Content-Length and
// checks it is a 200 with status 0.
func readResponse(br *bufio.Reader) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	n := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			n, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return err
	}
	if !bytes.HasPrefix(body, []byte(`{"status":0`)) {
		return fmt.Errorf("answer %q", body)
	}
	return nil
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
