package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nkeys"

	"github.com/rampart-dev/rampart/internal/feed"
)

const fleetHelp = `
The fleet (docs/fleet.md).

  rampart fleet keygen FILE   write a new node key (an NKey seed, mode 0600)
                              to FILE and print its public key, for the
                              other nodes' [fleet] peers
  rampart fleet pubkey FILE   print the public key of the seed in FILE
  rampart fleet feed-keygen FILE
                              write a new Ed25519 key for [feed]'s signed
                              feed (a base64 seed, mode 0600) and print the
                              public key its subscribers pin
`

func runFleet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fleet", "keygen FILE | pubkey FILE | feed-keygen FILE", fleetHelp, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	w := fs.Args()
	if len(w) != 2 || (w[0] != "keygen" && w[0] != "pubkey" && w[0] != "feed-keygen") {
		return usagef("which? keygen FILE, pubkey FILE or feed-keygen FILE")
	}
	if w[0] == "feed-keygen" {
		seed, pub, err := feed.NewKey()
		if err != nil {
			return err
		}
		if err := writeNew(w[1], seed); err != nil {
			return err
		}
		fmt.Fprintln(stdout, pub)
		return nil
	}
	var kp nkeys.KeyPair
	if w[0] == "keygen" {
		var err error
		if kp, err = nkeys.CreateUser(); err != nil {
			return err
		}
		seed, err := kp.Seed()
		if err != nil {
			return err
		}
		if err := writeNew(w[1], string(seed)); err != nil {
			return err
		}
	} else {
		b, err := os.ReadFile(w[1])
		if err != nil {
			return err
		}
		if kp, err = nkeys.ParseDecoratedNKey(b); err != nil {
			return fmt.Errorf("%s: not an NKey seed", w[1])
		}
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, pub)
	return nil
}

// writeNew writes a new key file, mode 0600, never over an existing one.
func writeNew(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: not overwriting a key", path)
		}
		return err
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
