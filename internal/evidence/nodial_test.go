package evidence

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoDialling proves that reading a hostile message cannot make
// Rampart contact anything: no link is followed, no name resolved, no
// program run.
//
//  1. The package's own files import nothing that reaches the network,
//     the file system or other programs: not net, net/http, net/smtp,
//     net/rpc, crypto/tls, os, os/exec, syscall, plugin, unsafe.
//  2. Its dependencies, followed all the way down, reach net/http,
//     net/smtp, net/rpc and os/exec only where this test knows why:
//     golang.org/x/net/publicsuffix imports net/http/cookiejar for the
//     interface its list satisfies, and calls nothing in it.
//  3. Its own code calls nothing named like what connects, resolves, runs
//     or opens: Dial*, Listen*, net's Lookup and Resolve functions, an
//     HTTP client's Post, PostForm and RoundTrip, SendMail, NewClient,
//     Command, StartProcess, Open, OpenFile, ReadFile, WriteFile. (Get
//     and Do are a header's and too common to tell apart without types;
//     with neither net nor net/http imported, no client can be made.)
func TestNoDialling(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	forbiddenImport := map[string]bool{"net": true, "net/http": true, "net/smtp": true, "net/rpc": true, "crypto/tls": true,
		"os": true, "os/exec": true, "syscall": true, "plugin": true, "unsafe": true}
	calls := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); forbiddenImport[p] {
				t.Errorf("%s imports %s", f, p)
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			calls++
			name := ""
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				name = fn.Sel.Name
			case *ast.Ident:
				name = fn.Name
			}
			if strings.HasPrefix(name, "Dial") || strings.HasPrefix(name, "Listen") {
				t.Errorf("%s calls %s", f, name)
			}
			switch name {
			case "LookupHost", "LookupIP", "LookupIPAddr", "LookupNetIP", "LookupAddr", "LookupMX", "LookupTXT", "LookupCNAME",
				"LookupNS", "LookupSRV", "LookupPort", "ResolveIPAddr", "ResolveTCPAddr", "ResolveUDPAddr",
				"Post", "PostForm", "RoundTrip", "SendMail", "NewClient",
				"Command", "CommandContext", "StartProcess", "Open", "OpenFile", "ReadFile", "WriteFile":
				t.Errorf("%s calls %s", f, name)
			}
			return true
		})
	}
	if calls < 100 {
		t.Fatalf("found only %d calls: the check looked at the wrong files", calls)
	}

	out, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}} {{join .Imports " "}}`, ".").CombinedOutput()
	if err != nil {
		t.Skipf("skipping the dependency check: go list: %v\n%s", err, out)
	}
	forbidden := map[string]bool{"net/http": true, "net/smtp": true, "net/rpc": true, "os/exec": true}
	known := map[string]bool{"net/http/cookiejar": true}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg := fields[0]
		if forbidden[pkg] || strings.HasPrefix(pkg, "net/http/") && !known[pkg] || known[pkg] {
			continue // inside what is forbidden, or known
		}
		for _, imp := range fields[1:] {
			if forbidden[imp] {
				t.Errorf("%s, a dependency, imports %s", pkg, imp)
			}
		}
	}
}
