package postfix

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-dev/rampart/internal/engine"
	"github.com/rampart-dev/rampart/internal/policy"
)

// rcptRequest is a request as Postfix 3.7's smtpd sends it at RCPT, with
// every attribute it fills in, for client i.
func rcptRequest(i int) string {
	ip := fmt.Sprintf("%d.%d.%d.%d", 23+i%150, i>>16&255, i>>8&255, 1+i%254)
	return "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nhelo_name=mail.example.net\n" +
		"queue_id=4bKq7xk3PZz1\nsender=alice" + fmt.Sprint(i) + "@example.net\nrecipient=bob@example.org\nrecipient_count=0\n" +
		"client_address=" + ip + "\nclient_name=mail-" + ip + ".example.net\nreverse_client_name=mail-" + ip + ".example.net\n" +
		"instance=1a2b3.5f3c1d2e.8f9a0.0\nsasl_method=\nsasl_username=\nsasl_sender=\nsize=12345\n" +
		"ccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\n" +
		"encryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n" +
		"etrn_domain=\nstress=\nclient_port=41234\npolicy_context=\nserver_address=192.0.2.25\nserver_port=25\n\n"
}

func BenchmarkReadRequest(b *testing.B) {
	in := strings.Repeat(rcptRequest(1), 64)
	r := strings.NewReader(in)
	br := bufio.NewReaderSize(r, maxLine)
	b.SetBytes(int64(len(rcptRequest(1))))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			r.Reset(in)
			br.Reset(r)
		}
		if _, err := readRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPolicyServer measures decisions over loopback TCP: parallel
// clients, each on its own reused connection (as smtpd processes are), send
// full RCPT requests from many client addresses. "judge" answers from a real
// engine with the default scenarios; "dunno" is the server alone.
func BenchmarkPolicyServer(b *testing.B) {
	cfg := engine.DefaultConfig(engine.Jail{Name: "postfix", Services: []string{"postfix"}, MaxRetry: 5, FindTime: 10 * time.Minute, BanTime: time.Hour})
	e, err := engine.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	handlers := []struct {
		name string
		h    Handler
	}{
		{"judge", &JudgeHandler{Judge: &policy.Judge{Engine: e}}},
		{"dunno", HandlerFunc(func(context.Context, *Request) Answer { return Answer{Action: Dunno} })},
	}
	reqs := make([][]byte, 4096)
	for i := range reqs {
		reqs[i] = []byte(rcptRequest(i))
	}
	for _, hh := range handlers {
		b.Run(hh.name, func(b *testing.B) {
			s := &Server{Handler: hh.h}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go s.Serve(l)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				s.Shutdown(ctx)
			}()
			var next atomic.Uint64
			b.ReportAllocs()
			b.SetParallelism(8) // 8 x GOMAXPROCS clients
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
				i := int(next.Add(1) * 997)
				for pb.Next() {
					i++
					if _, err := c.Write(reqs[i%len(reqs)]); err != nil {
						b.Error(err)
						return
					}
					line, err := br.ReadSlice('\n')
					if err != nil || string(line) != "action=DUNNO\n" {
						b.Errorf("answer %q, %v", line, err)
						return
					}
					if _, err := br.ReadSlice('\n'); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "decisions/s")
			// CPU of the whole process (clients included) per decision: less
			// sensitive than wall time to other jobs on a shared machine.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
