package main

import (
	"bufio"
	"bytes"
	"net"
	"strings"
)

// serveEcho is the control for the measurements: the least a Go server can
// do per Postfix policy request (a goroutine per connection, a buffered
// reader, one write per answer), answering every request "action=DUNNO" at
// once without parsing it. Run against it, policyload shows what the
// machine, the kernel's loopback and the generator cost, apart from
// Rampart.
func serveEcho(addr string) error {
	network := "tcp"
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", path
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	logf("echo server on %s", l.Addr())
	answer := []byte("action=DUNNO\n\n")
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			br := bufio.NewReaderSize(c, 8192)
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if len(bytes.TrimRight(line, "\r\n")) > 0 {
					continue
				}
				if _, err := c.Write(answer); err != nil {
					return
				}
			}
		}()
	}
}
