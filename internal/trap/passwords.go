package trap

import (
	"bufio"
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"strings"
)

// passwordsTxt is the built-in list of passwords that work on trap
// accounts.
//
//go:embed passwords.txt
var passwordsTxt []byte

// DefaultPasswords returns the built-in password list.
func DefaultPasswords() []string {
	ps, err := ParsePasswords(bytes.NewReader(passwordsTxt))
	if err != nil {
		panic("built-in password list: " + err.Error())
	}
	return ps
}

// ParsePasswords reads a password list: one password a line, exactly as
// written (no trimming, so " secret" is a password of its own); empty
// lines and lines starting with '#' are skipped; %u stands for the
// account's local part. At most 100,000 passwords of 256 bytes each.
func ParsePasswords(r io.Reader) ([]string, error) {
	var ps []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 4096)
	line := 0
	for sc.Scan() {
		line++
		p := strings.TrimSuffix(sc.Text(), "\r")
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if len(p) > 256 {
			return nil, fmt.Errorf("line %d: a password longer than 256 bytes", line)
		}
		if len(ps) >= 100_000 {
			return nil, fmt.Errorf("line %d: more than 100000 passwords", line)
		}
		ps = append(ps, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no passwords")
	}
	return ps, nil
}
