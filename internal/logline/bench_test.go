package logline

import "testing"

// benchLines mixes the envelopes Parse meets, weighted roughly as on a
// Debian mail and SSH server: mostly RFC 3164 from rsyslog, some ISO 8601
// (rsyslog's high-precision format), a little RFC 5424 and journald JSON.
var benchLines = []string{
	"Mar  8 06:25:04 mail sshd[1763770]: Failed password for backup from 150.139.62.2 port 49210 ssh2",
	"Mar  8 06:25:05 mail sshd[1763790]: Invalid user docker from 215.134.225.239 port 50327",
	"Mar  8 06:25:07 mail sshd[1763790]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=215.134.225.239",
	"Mar 10 19:39:00 mail postfix/postscreen[436]: CONNECT from [2a00:1450:4003:800::f8]:51952 to [2001:db8:1f0c::10]:25",
	"Mar  8 06:25:09 mail postfix/submission/smtpd[1763801]: warning: unknown[41.215.130.67]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=info@example.org",
	"Mar  8 06:25:13 mail dovecot: auth: passwd-file(manager@example.org,99.62.254.50,<KVDMvjW0vv2PPYsv>): unknown user",
	"Mar  8 06:25:14 mail dovecot: imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<manager@example.org>, method=PLAIN, rip=99.62.254.50, lip=198.51.100.10, TLS, session=<KVDMvjW0vv2PPYsv>",
	"Mar  8 06:25:15 mail CRON[1763900]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
	"Mar  8 06:25:16 mail kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:8e:1f:0c:d0:07:ca:1a:2b:01:08:00 SRC=45.148.10.1 DST=198.51.100.10 LEN=40 TOS=0x00 PREC=0x00 TTL=241 ID=54321 PROTO=TCP SPT=51234 DPT=3389 WINDOW=1024 RES=0x00 SYN URGP=0 ",
	"2025-03-08T06:25:17.123456+01:00 mail sshd[1763950]: Connection closed by 203.0.113.5 port 51234 [preauth]",
	"<38>1 2025-03-08T06:25:18.954167+01:00 mail.example.org sshd 55555 - - Failed password for root from 192.0.2.7 port 4242 ssh2",
	`{"__REALTIME_TIMESTAMP":"1741411519000000","_HOSTNAME":"mail","SYSLOG_IDENTIFIER":"sshd","_PID":"1763960","MESSAGE":"Invalid user admin from 192.0.2.8 port 5353"}`,
}

// BenchmarkParse parses the mixed lines above with the zero Parser, as
// 'rampart test' and the daemon's sources do.
func BenchmarkParse(b *testing.B) {
	var p Parser
	size := 0
	for _, l := range benchLines {
		size += len(l)
	}
	b.SetBytes(int64(size / len(benchLines)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := p.Parse(benchLines[i]); err != nil {
			b.Fatal(err)
		}
		i++
		if i == len(benchLines) {
			i = 0
		}
	}
}

// BenchmarkParseRFC3164 is the common case alone: rsyslog's traditional format.
func BenchmarkParseRFC3164(b *testing.B) {
	var p Parser
	l := benchLines[0]
	b.SetBytes(int64(len(l)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Parse(l); err != nil {
			b.Fatal(err)
		}
	}
}
