package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nkeys"
)

const fleetHelp = `
The fleet (docs/fleet.md).

  rampart fleet keygen FILE   write a new node key (an NKey seed, mode 0600)
                              to FILE and print its public key, for the
                              other nodes' [fleet] peers
  rampart fleet pubkey FILE   print the public key of the seed in FILE
`

func runFleet(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fleet", "keygen FILE | pubkey FILE", fleetHelp, stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	w := fs.Args()
	if len(w) != 2 || (w[0] != "keygen" && w[0] != "pubkey") {
		return usagef("which? keygen FILE or pubkey FILE")
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
		f, err := os.OpenFile(w[1], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return fmt.Errorf("%s exists: not overwriting a node key", w[1])
			}
			return err
		}
		if _, err := f.Write(append(seed, '\n')); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
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
