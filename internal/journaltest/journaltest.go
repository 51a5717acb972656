// Package journaltest writes systemd journal files for tests: entries in
// journal export format, which systemd-journal-remote (Debian package
// systemd-journal-remote) turns into a journal file for the real journalctl
// to read.
package journaltest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Remote is systemd-journal-remote's path on Debian.
const Remote = "/lib/systemd/systemd-journal-remote"

// Entry is one journal entry to write.
type Entry struct {
	Msg   string    // any bytes: what is not UTF-8 text on one line takes the binary form
	Ident string    // SYSLOG_IDENTIFIER; "sshd" when empty
	Unit  string    // _SYSTEMD_UNIT; "ssh.service" when empty
	Comm  string    // _COMM, the process's name; Ident when empty
	PID   int       // _PID; none when 0
	Host  string    // _HOSTNAME; none when empty
	Time  time.Time // zero: now
}

// File is a journal file in a test's temporary directory, alone in it.
type File struct {
	Path string
	t    testing.TB
	mono int // monotonic clock of the next entry
}

// New returns a journal file to write, or skips the test when journalctl
// or systemd-journal-remote is missing.
func New(t testing.TB) *File {
	t.Helper()
	for _, b := range []string{"journalctl", Remote} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (Debian: systemd, systemd-journal-remote): %v", b, err)
		}
	}
	return &File{t: t, Path: filepath.Join(t.TempDir(), "test.journal"), mono: 1000}
}

// Dir is the directory holding the file, for journalctl --directory.
func (f *File) Dir() string { return filepath.Dir(f.Path) }

// Append writes entries to the journal file.
func (f *File) Append(es ...Entry) {
	f.t.Helper()
	var b bytes.Buffer
	for _, e := range es {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		if e.Ident == "" {
			e.Ident = "sshd"
		}
		if e.Unit == "" {
			e.Unit = "ssh.service"
		}
		if e.Comm == "" {
			e.Comm = e.Ident
		}
		f.mono += 1000
		fields := []string{"__REALTIME_TIMESTAMP", fmt.Sprint(e.Time.UnixMicro()), "__MONOTONIC_TIMESTAMP", fmt.Sprint(f.mono),
			"_BOOT_ID", "0123456789abcdef0123456789abcdef", "SYSLOG_IDENTIFIER", e.Ident, "_COMM", e.Comm, "_SYSTEMD_UNIT", e.Unit}
		if e.PID != 0 {
			fields = append(fields, "_PID", fmt.Sprint(e.PID))
		}
		if e.Host != "" {
			fields = append(fields, "_HOSTNAME", e.Host)
		}
		WriteEntry(&b, append(fields, "MESSAGE", e.Msg)...)
	}
	cmd := exec.Command(Remote, "-o", f.Path, "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		f.t.Fatalf("%s: %v\n%s", Remote, err, out)
	}
}

// LastCursor returns the cursor of the newest entry, as journalctl reports it.
func (f *File) LastCursor() string {
	f.t.Helper()
	out, err := exec.Command("journalctl", "--file="+f.Path, "--output=json", "--lines=1", "--no-pager").Output()
	if err != nil {
		f.t.Fatalf("journalctl: %v", err)
	}
	var rec struct {
		Cursor string `json:"__CURSOR"`
	}
	if err := json.Unmarshal(out, &rec); err != nil {
		f.t.Fatalf("journalctl output %q: %v", out, err)
	}
	return rec.Cursor
}

// WriteField writes a field in journal export format: "NAME=value\n", or,
// for a value that is not UTF-8 or holds a newline, the binary form: the
// name, a newline, the size as 64-bit little-endian, the value, a newline.
func WriteField(b *bytes.Buffer, name, value string) {
	if utf8.ValidString(value) && !strings.Contains(value, "\n") {
		fmt.Fprintf(b, "%s=%s\n", name, value)
		return
	}
	b.WriteString(name + "\n")
	binary.Write(b, binary.LittleEndian, uint64(len(value)))
	b.WriteString(value + "\n")
}

// WriteEntry writes an entry of fields (name, value pairs) and the empty
// line that ends it.
func WriteEntry(b *bytes.Buffer, fields ...string) {
	for i := 0; i+1 < len(fields); i += 2 {
		WriteField(b, fields[i], fields[i+1])
	}
	b.WriteString("\n")
}
