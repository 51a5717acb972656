package main

import (
	"net/netip"
	"strconv"
	"strings"
)

// The rest of a Debian 12 server's syslog: cron, systemd, the UFW firewall,
// BIND, nginx logging to syslog, sudo, rsyslog itself.

var otherScenarios = []scenario{
	{28, cronJob},
	{10, systemdTimer},
	{30, ufwBlock},
	{8, namedDenied},
	{14, nginxRequest},
	{3, sudoCommand},
	{1, rsyslogHUP},
}

var cronJobs = []struct{ user, uid, cmd string }{
	{"root", "0", "   cd / && run-parts --report /etc/cron.hourly"},
	{"root", "0", "command -v debian-sa1 > /dev/null && debian-sa1 1 1"},
	{"root", "0", "[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi"},
	{"deploy", "1000", "/home/deploy/bin/backup-db.sh >/dev/null 2>&1"},
	{"www-data", "33", "php /var/www/nextcloud/cron.php"},
}

func cronJob(g *generator) []line {
	j := cronJobs[g.r.IntN(len(cronJobs))]
	tag := "CRON[" + strconv.Itoa(g.newPID()) + "]: "
	return []line{
		{catOther, tag + "pam_unix(cron:session): session opened for user " + j.user + "(uid=" + j.uid + ") by (uid=0)"},
		{catOther, tag + "(" + j.user + ") CMD (" + j.cmd + ")"},
		{catOther, tag + "pam_unix(cron:session): session closed for user " + j.user},
	}
}

var units = []struct{ name, desc string }{
	{"phpsessionclean.service", "Clean php session files"},
	{"sysstat-collect.service", "system activity accounting tool"},
	{"apt-daily.service", "Daily apt download activities"},
	{"logrotate.service", "Rotate log files"},
	{"certbot.service", "Certbot"},
	{"man-db.service", "Daily man-db regeneration"},
	{"e2scrub_all.service", "Online ext4 Metadata Check for All Filesystems"},
}

func systemdTimer(g *generator) []line {
	u := units[g.r.IntN(len(units))]
	ls := []line{
		{catOther, "systemd[1]: Starting " + u.name + " - " + u.desc + "..."},
		{catOther, "systemd[1]: " + u.name + ": Deactivated successfully."},
		{catOther, "systemd[1]: Finished " + u.name + " - " + u.desc + "."},
	}
	if g.r.IntN(2) == 0 {
		ls = append(ls, line{catOther, "systemd[1]: " + u.name + ": Consumed " + g.itoa(0, 2) + "." + g.itoa(100, 999) + "s CPU time."})
	}
	return ls
}

var ufwPorts = []string{"23", "445", "3389", "5900", "8080", "1433", "3306", "6379", "2323", "5555", "8443", "81", "9200", "11211", "27017", "5432", "8088", "7547"}

func ufwBlock(g *generator) []line {
	c := g.attacker()
	ttl := g.itoa(40, 250)
	win := g.pick("1024", "65535", "29200", "14600", "42340")
	mac := "MAC=52:54:00:8e:1f:0c:d0:07:ca:" + g.lowerHex(2) + ":" + g.lowerHex(2) + ":01:08:00"
	var msg string
	if c.addr.Is6() {
		mac = "MAC=52:54:00:8e:1f:0c:d0:07:ca:" + g.lowerHex(2) + ":" + g.lowerHex(2) + ":01:86:dd"
		msg = "[UFW BLOCK] IN=eth0 OUT= " + mac + " SRC=" + expand6(c.addr) + " DST=" + expand6(serverV6) + " LEN=" + g.pick("60", "80", "64") + " TC=0 HOPLIMIT=" + ttl + " FLOWLBL=" + g.itoa(0, 1048575) + " PROTO=TCP SPT=" + g.port() + " DPT=" + g.pickList(ufwPorts) + " WINDOW=" + win + " RES=0x00 SYN URGP=0 "
	} else {
		msg = "[UFW BLOCK] IN=eth0 OUT= " + mac + " SRC=" + c.ip() + " DST=" + serverV4.String() + " LEN=" + g.pick("40", "44", "60") + " TOS=0x00 PREC=0x00 TTL=" + ttl + " ID=" + g.itoa(1, 65535) + g.pick("", "", " DF") + " PROTO=TCP SPT=" + g.port() + " DPT=" + g.pickList(ufwPorts) + " WINDOW=" + win + " RES=0x00 SYN URGP=0 "
	}
	return []line{{catOther, "kernel: " + msg}}
}

// expand6 is the kernel's %pI6 form: eight four-digit groups.
func expand6(a netip.Addr) string {
	b := a.As16()
	var sb strings.Builder
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		for _, x := range []byte{b[i] >> 4, b[i] & 15, b[i+1] >> 4, b[i+1] & 15} {
			sb.WriteByte(hex[x])
		}
	}
	return sb.String()
}

func namedDenied(g *generator) []line {
	c := g.attacker()
	tag := "named[" + strconv.Itoa(g.fixedPID("named")) + "]: "
	q := g.pick("sl/ANY/IN", "example.org/ANY/IN", "peacecorps.gov/ANY/IN", "version.bind/TXT/CH", "google.com/A/IN")
	name, _, _ := strings.Cut(q, "/")
	return []line{{catOther, tag + "client @0x7f" + g.lowerHex(10) + " " + c.ip() + "#" + g.port() + " (" + name + "): query (cache) '" + q + "' denied"}}
}

var nginxPaths = []struct {
	path, status string
}{
	{"/", "200"}, {"/", "200"}, {"/index.html", "200"}, {"/favicon.ico", "200"}, {"/robots.txt", "200"},
	{"/wp-login.php", "404"}, {"/.env", "404"}, {"/xmlrpc.php", "404"}, {"/.git/config", "404"},
	{"/phpmyadmin/index.php", "404"}, {"/admin/login", "404"}, {"/cgi-bin/luci/;stok=/locale", "404"},
	{"/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php", "404"}, {"/owa/auth/logon.aspx", "404"},
	{"/SDK/webLanguage", "400"}, {"/.well-known/acme-challenge/" + "x", "404"},
}

var userAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 zgrab/0.x",
	"python-requests/2.31.0",
	"curl/7.88.1",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
	"-",
}

func nginxRequest(g *generator) []line {
	c := g.attacker()
	if g.r.IntN(3) == 0 {
		c = g.legitClient()
	}
	p := nginxPaths[g.r.IntN(len(nginxPaths))]
	stamp := g.now.Format("02/Jan/2006:15:04:05 -0700")
	if g.r.IntN(8) == 0 && p.status == "404" {
		return []line{{catOther, "nginx: " + g.now.Format("2006/01/02 15:04:05") + " [error] " + strconv.Itoa(g.fixedPID("nginx-worker")) + "#" + strconv.Itoa(g.fixedPID("nginx-worker")) + ": *" + g.itoa(1000, 999999) + " open() \"/var/www/html" + p.path + "\" failed (2: No such file or directory), client: " + c.ip() + ", server: _, request: \"GET " + p.path + " HTTP/1.1\", host: \"" + serverV4.String() + "\""}}
	}
	size := g.itoa(150, 20000)
	return []line{{catOther, "nginx: " + c.ip() + " - - [" + stamp + "] \"GET " + p.path + " HTTP/1.1\" " + p.status + " " + size + " \"-\" \"" + g.pickList(userAgents) + "\""}}
}

func sudoCommand(g *generator) []line {
	cmd := g.pick("/usr/bin/systemctl reload nginx", "/usr/bin/apt update", "/usr/bin/journalctl -u postfix", "/usr/sbin/postqueue -p")
	return []line{
		{catOther, "sudo:   deploy : PWD=/home/deploy ; USER=root ; COMMAND=" + cmd},
		{catOther, "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1000)"},
		{catOther, "sudo: pam_unix(sudo:session): session closed for user root"},
	}
}

func rsyslogHUP(g *generator) []line {
	return []line{{catOther, "rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"" + strconv.Itoa(g.fixedPID("rsyslogd")) + "\" x-info=\"https://www.rsyslog.com\"] rsyslogd was HUPed"}}
}
