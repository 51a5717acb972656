package main

import "strconv"

// OpenSSH 9.2p1 (Debian 12) at the default LogLevel INFO, with UsePAM yes,
// PasswordAuthentication yes and KbdInteractiveAuthentication no.

// systemUsers exist on the server; attackers guess them too.
var systemUsers = []string{"root", "root", "root", "root", "deploy", "git", "backup", "www-data", "postgres", "alice"}

// sshUsers are names brute-force bots try that do not exist here.
var sshUsers = []string{
	"admin", "test", "user", "ubuntu", "oracle", "guest", "pi", "support", "jenkins", "hadoop",
	"ansible", "minecraft", "steam", "test1", "user1", "administrator", "debian", "centos", "ec2-user",
	"nagios", "zabbix", "mysql", "odoo", "sol", "solana", "validator", "trader", "es", "elastic", "dev",
	"developer", "tomcat", "docker", "kafka", "ftpuser", "ftp", "user01", "demo", "server", "teamspeak",
	"ts3", "vagrant", "azureuser", "debianuser", "admin1", "test2", "testuser", "sysadmin", "mongodb",
	"redis", "hdfs", "spark", "gpadmin", "postgres1", "oracle1", "www", "web", "webadmin", "wordpress",
	"nginx", "apache", "tom", "john", "mike", "david", "alex", "max", "sam", "user2", "user3", "student",
	"1234", "123", "admin123", "superadmin", "operator", "service", "system", "manager", "camera",
	"ubnt", "usuario", "prueba", "dspace", "frappe", "erpnext", "odoo15", "odoo16", "node", "nodejs",
	"git1", "gitlab", "gitlab-runner", "jira", "confluence", "bitcoin", "eth", "ethereum", "miner",
	"orangepi", "raspberry", "sa", "zhangsan", "lighthouse", "ubuntu1", "default", "www-data1", "backup1",
}

var sshScenarios = []scenario{
	{30, sshInvalidUserPassword},
	{20, sshKnownUserPassword},
	{9, sshInvalidUserNoAuth},
	{12, sshPreauthClose},
	{5, sshKexFailure},
	{4, sshNegotiationFailure},
	{2, sshTimeout},
	{8, sshPublickeyLogin},
	{1, sshPasswordLogin},
}

type sshConn struct {
	g    *generator
	tag  string
	c    client
	port string
	ls   []line
}

func (g *generator) sshConn(c client) *sshConn {
	return &sshConn{g: g, tag: "sshd[" + strconv.Itoa(g.newPID()) + "]: ", c: c, port: g.port()}
}

func (s *sshConn) log(msg string)                  { s.ls = append(s.ls, line{catSSH, s.tag + msg}) }
func (s *sshConn) other(cat category, text string) { s.ls = append(s.ls, line{cat, text}) }
func (s *sshConn) ipPort() string                  { return s.c.ip() + " port " + s.port }

// preauthEnd is how a bot's connection ends after its last attempt; who is
// "invalid user NAME" or "authenticating user NAME".
func (s *sshConn) preauthEnd(who string) {
	switch s.g.r.IntN(10) {
	case 0, 1, 2, 3, 4:
		s.log("Received disconnect from " + s.c.ip() + " port " + s.port + ":11: Bye Bye [preauth]")
		s.log("Disconnected from " + who + " " + s.ipPort() + " [preauth]")
	case 5:
		s.log("Received disconnect from " + s.c.ip() + " port " + s.port + ":11: Normal Shutdown, Thank you for playing [preauth]")
		s.log("Disconnected from " + who + " " + s.ipPort() + " [preauth]")
	case 6:
		s.log("Connection reset by " + who + " " + s.ipPort() + " [preauth]")
	default:
		s.log("Connection closed by " + who + " " + s.ipPort() + " [preauth]")
	}
}

// failures logs n failed passwords for user (invalid: a user that does not
// exist) and what sshd and PAM log after them, including the cut-off after
// MaxAuthTries (6).
func (s *sshConn) failures(user string, invalid bool, n int) {
	rhost := "rhost=" + s.c.ip()
	who := "authenticating user " + user
	named := user // as "maximum authentication attempts exceeded for" names it
	if invalid {
		who = "invalid user " + user
		named = "invalid user " + user
	}
	failed := "Failed password for " + named + " from "
	for i := range n {
		if i == 0 {
			if invalid {
				s.log("pam_unix(sshd:auth): check pass; user unknown")
				s.log("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= " + rhost)
			} else {
				s.log("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= " + rhost + "  user=" + user)
			}
		}
		s.log(failed + s.ipPort() + " ssh2")
	}
	if n >= 6 {
		s.log("error: maximum authentication attempts exceeded for " + named + " from " + s.ipPort() + " ssh2 [preauth]")
		s.log("Disconnecting " + who + " " + s.ipPort() + ": Too many authentication failures [preauth]")
		if invalid {
			s.log("PAM " + strconv.Itoa(n-1) + " more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= " + rhost)
		} else {
			s.log("PAM " + strconv.Itoa(n-1) + " more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= " + rhost + "  user=" + user)
		}
		s.log("PAM service(sshd) ignoring max retries; " + strconv.Itoa(n) + " > 3")
		return
	}
	if n > 1 {
		if invalid {
			s.log("PAM " + strconv.Itoa(n-1) + " more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= " + rhost)
		} else {
			s.log("PAM " + strconv.Itoa(n-1) + " more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= " + rhost + "  user=" + user)
		}
	}
	s.preauthEnd(who)
}

// attempts is how many passwords one bot connection tries: mostly one.
func (g *generator) attempts() int {
	switch x := g.r.IntN(100); {
	case x < 70:
		return 1
	case x < 82:
		return 2
	case x < 90:
		return 3
	case x < 94:
		return 4 + g.r.IntN(2)
	default:
		return 6
	}
}

func sshInvalidUserPassword(g *generator) []line {
	s := g.sshConn(g.attacker())
	user := g.pickList(sshUsers)
	if g.r.IntN(500) == 0 {
		user = "" // bots do send empty names; sshd logs two spaces
	}
	s.log("Invalid user " + user + " from " + s.ipPort())
	s.failures(user, true, g.attempts())
	return s.ls
}

func sshKnownUserPassword(g *generator) []line {
	s := g.sshConn(g.attacker())
	s.failures(g.pickList(systemUsers), false, g.attempts())
	return s.ls
}

// sshInvalidUserNoAuth: a bot names a user, is told it's invalid (by the
// "none" method failing) and leaves without trying a password.
func sshInvalidUserNoAuth(g *generator) []line {
	s := g.sshConn(g.attacker())
	user := g.pickList(sshUsers)
	s.log("Invalid user " + user + " from " + s.ipPort())
	s.preauthEnd("invalid user " + user)
	return s.ls
}

func sshPreauthClose(g *generator) []line {
	s := g.sshConn(g.attacker())
	switch g.r.IntN(4) {
	case 0:
		s.log("Connection reset by " + s.ipPort() + " [preauth]")
	case 1:
		s.log("Received disconnect from " + s.c.ip() + " port " + s.port + ":11: Bye Bye [preauth]")
		s.log("Disconnected from " + s.ipPort() + " [preauth]")
	default:
		s.log("Connection closed by " + s.ipPort() + " [preauth]")
	}
	return s.ls
}

func sshKexFailure(g *generator) []line {
	s := g.sshConn(g.attacker())
	switch g.r.IntN(5) {
	case 0:
		s.log("error: kex_exchange_identification: read: Connection reset by peer")
		s.log("Connection reset by " + s.ipPort())
	case 1:
		s.log("error: kex_exchange_identification: banner line contains invalid characters")
		s.log("banner exchange: Connection from " + s.ipPort() + ": invalid format")
	case 2:
		s.log("error: kex_exchange_identification: client sent invalid protocol identifier \"GET / HTTP/1.1\"")
		s.log("banner exchange: Connection from " + s.ipPort() + ": invalid format")
	case 3:
		s.log("error: kex_protocol_error: type 20 seq 2 [preauth]")
		s.log("error: kex_protocol_error: type 30 seq 3 [preauth]")
		s.log("Connection closed by " + s.ipPort() + " [preauth]")
	default:
		s.log("error: kex_exchange_identification: Connection closed by remote host")
		s.log("Connection closed by " + s.ipPort())
	}
	return s.ls
}

func sshNegotiationFailure(g *generator) []line {
	s := g.sshConn(g.attacker())
	switch g.r.IntN(3) {
	case 0:
		s.log("Unable to negotiate with " + s.ipPort() + ": no matching key exchange method found. Their offer: diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1 [preauth]")
	case 1:
		s.log("Unable to negotiate with " + s.ipPort() + ": no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]")
	default:
		s.log("Unable to negotiate with " + s.ipPort() + ": no matching cipher found. Their offer: aes128-cbc,3des-cbc,aes192-cbc,aes256-cbc [preauth]")
	}
	return s.ls
}

func sshTimeout(g *generator) []line {
	s := g.sshConn(g.attacker())
	s.log("fatal: Timeout before authentication for " + s.ipPort())
	return s.ls
}

// loginSession adds what a successful interactive login logs, from the
// session opening to its end.
func (s *sshConn) loginSession(user string) {
	g := s.g
	uid := map[string]string{"deploy": "1000", "alice": "1001", "git": "112", "backup": "34", "root": "0"}[user]
	s.log("pam_unix(sshd:session): session opened for user " + user + "(uid=" + uid + ") by (uid=0)")
	g.sessionNo++
	no := strconv.Itoa(g.sessionNo + 4000)
	logind := "systemd-logind[" + strconv.Itoa(g.fixedPID("logind")) + "]: "
	s.other(catOther, logind+"New session "+no+" of user "+user+".")
	s.other(catOther, "systemd[1]: Started session-"+no+".scope - Session "+no+" of User "+user+".")
	if g.r.IntN(3) == 0 {
		s.log("Received disconnect from " + s.c.ip() + " port " + s.port + ":11: disconnected by user")
		s.log("Disconnected from user " + user + " " + s.ipPort())
	} else {
		s.log("Connection closed by " + s.ipPort())
	}
	s.log("pam_unix(sshd:session): session closed for user " + user)
	s.other(catOther, "systemd[1]: session-"+no+".scope: Deactivated successfully.")
	s.other(catOther, logind+"Session "+no+" logged out. Waiting for processes to exit.")
	s.other(catOther, logind+"Removed session "+no+".")
}

func sshPublickeyLogin(g *generator) []line {
	s := g.sshConn(g.legitClient())
	user := g.pick("deploy", "deploy", "deploy", "git", "git", "backup", "alice", "root")
	key := g.pick("ED25519", "ED25519", "RSA", "ECDSA")
	fp := base64Raw(g.bytes(32))
	s.log("Accepted publickey for " + user + " from " + s.ipPort() + " ssh2: " + key + " SHA256:" + fp)
	if user == "git" || user == "backup" {
		// Non-interactive: no logind session, just PAM.
		s.log("pam_unix(sshd:session): session opened for user " + user + "(uid=" + map[string]string{"git": "112", "backup": "34"}[user] + ") by (uid=0)")
		s.log("Received disconnect from " + s.c.ip() + " port " + s.port + ":11: disconnected by user")
		s.log("Disconnected from user " + user + " " + s.ipPort())
		s.log("pam_unix(sshd:session): session closed for user " + user)
		return s.ls
	}
	s.loginSession(user)
	return s.ls
}

func sshPasswordLogin(g *generator) []line {
	s := g.sshConn(g.legitClient())
	s.log("Accepted password for alice from " + s.ipPort() + " ssh2")
	s.loginSession("alice")
	return s.ls
}
