package logline

import (
	"encoding/json"
	"testing"
)

// journalRecords are records as journalctl --output=json writes them, and
// some it does not write: scanJournal must decode the first kind alone and
// leave to encoding/json whatever it cannot decode as encoding/json would.
var journalRecords = []struct {
	name, rec string
	fast      bool // scanJournal decodes it on its own
}{
	{"journalctl's fields", `{"__CURSOR":"s=9c1a;i=1;b=0123;m=3e8;t=60a2;x=7567","__REALTIME_TIMESTAMP":"1700000000000000","__MONOTONIC_TIMESTAMP":"1000","_BOOT_ID":"0123456789abcdef0123456789abcdef","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sshd","_COMM":"sshd","_PID":"4242","SYSLOG_PID":"4241","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"Failed password for invalid user admin from 192.0.2.7 port 52814 ssh2"}`, true},
	{"UTF-8 message", `{"MESSAGE":"Invalid user jürgen from 192.0.2.8","_PID":"1"}`, true},
	{"null message", `{"MESSAGE":"earlier","MESSAGE":null,"_PID":null}`, true},
	{"repeated field: the last wins", `{"_PID":"1","_PID":"2"}`, true},
	{"spaces around the tokens", " { \"MESSAGE\" : \"x\" ,\t\"_PID\":\"7\" } \r", true},
	{"empty object", `{}`, true},
	{"escapes", `{"MESSAGE":"a \"quoted\" \\ word\u00e9"}`, false},
	{"escaped key", `{"MESS\u0041GE":"x"}`, false},
	{"byte array", `{"MESSAGE":[73,110,118,195,40]}`, false},
	{"array of strings", `{"MESSAGE":["one","two"]}`, false},
	{"not UTF-8", "{\"MESSAGE\":\"bad \xc3\x28 byte\"}", false},
	{"control character", "{\"MESSAGE\":\"tab\there\"}", false},
	{"lower-case key", `{"message":"x"}`, false},
	{"number", `{"_PID":4242}`, false},
	{"trailing data", `{"MESSAGE":"x"} {}`, false},
	{"trailing comma", `{"MESSAGE":"x",}`, false},
	{"unterminated", `{"MESSAGE":"x"`, false},
	{"not an object", `["MESSAGE"]`, false},
	{"null prefix", `{"MESSAGE":nullx}`, false},
}

func TestScanJournal(t *testing.T) {
	for _, tc := range journalRecords {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := scanJournal(tc.rec)
			if ok != tc.fast {
				t.Fatalf("scanJournal ok = %v, want %v", ok, tc.fast)
			}
			var want JournalEntry
			jerr := json.Unmarshal([]byte(tc.rec), &want)
			if ok && (jerr != nil || got != want) {
				t.Fatalf("scanJournal = %+v; encoding/json = %+v, %v", got, want, jerr)
			}
			// Either way ParseJournalEntry is encoding/json's decoding.
			e, err := ParseJournalEntry([]byte(tc.rec))
			if (err != nil) != (jerr != nil) || err == nil && e != want {
				t.Fatalf("ParseJournalEntry = %+v, %v; encoding/json = %+v, %v", e, err, want, jerr)
			}
		})
	}
	if e, _ := scanJournal(journalRecords[0].rec); e.Identifier != "sshd" || e.PID != "4242" || e.SyslogPID != "4241" ||
		e.Realtime != "1700000000000000" || e.Hostname != "web1" || e.Comm != "sshd" ||
		e.Cursor == "" || e.Message != "Failed password for invalid user admin from 192.0.2.7 port 52814 ssh2" {
		t.Errorf("journalctl's record decoded as %+v", e)
	}
}

// FuzzJournalEntry: wherever scanJournal decodes a record on its own, the
// entry is encoding/json's.
func FuzzJournalEntry(f *testing.F) {
	for _, tc := range journalRecords {
		f.Add(tc.rec)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		got, ok := scanJournal(rec)
		if !ok {
			return
		}
		var want JournalEntry
		if err := json.Unmarshal([]byte(rec), &want); err != nil {
			t.Fatalf("scanJournal decoded %q, which encoding/json rejects: %v", rec, err)
		}
		if got != want {
			t.Fatalf("%q: scanJournal = %+v, encoding/json = %+v", rec, got, want)
		}
	})
}

// BenchmarkJournalEntry decodes journalctl's usual record and turns it
// into a Line, as the journal source does for each one.
func BenchmarkJournalEntry(b *testing.B) {
	rec := []byte(journalRecords[0].rec)
	var p Parser
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		e, err := ParseJournalEntry(rec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.JournalLine(e); err != nil {
			b.Fatal(err)
		}
	}
}
