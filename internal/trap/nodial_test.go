package trap

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoDialling proves the trap cannot send anything anywhere: no code
// path in it opens an outbound connection or hands mail to a program.
//
// The rule, in two parts:
//
//  1. Its imports, followed all the way down (go list -deps), hold none of
//     the packages whose purpose is to connect out or to run a program:
//     net/smtp (a mail client), net/http (a client, whatever else it
//     does), net/rpc, os/exec (sendmail). go-smtp and go-imap are whole
//     protocol libraries whose packages hold clients too, so the import
//     check cannot exclude them by name; hence
//  2. the trap's own code calls nothing that connects or runs: no
//     function or method named Dial*, DialContext, SendMail, NewClient,
//     Command or StartProcess, from any package. The libraries' server
//     code does not call their clients, so nothing reachable from the
//     trap's listeners dials.
//
// The trap reaches the store only through its AccountStore and Keeper
// interfaces (package trapstore adapts Rampart's SQLite store, a local
// file), so the store's own dependencies (the SQLite library's C runtime
// carries os/exec for libc's system()) are not the trap's.
func TestNoDialling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Skipf("skipping: go list: %v\n%s", err, out)
	}
	forbidden := map[string]bool{"net/smtp": true, "net/http": true, "net/rpc": true, "os/exec": true, "net/http/httptrace": true}
	for _, dep := range strings.Fields(string(out)) {
		if forbidden[dep] {
			t.Errorf("the trap depends on %s, which connects out or runs programs", dep)
		}
	}
	files, _ := filepath.Glob("*.go")
	calls := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
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
			if strings.HasPrefix(name, "Dial") || name == "SendMail" || name == "NewClient" || name == "Command" || name == "StartProcess" {
				t.Errorf("%s calls %s", f, name)
			}
			return true
		})
	}
	if calls < 100 {
		t.Fatalf("found only %d calls: the check looked at the wrong files", calls)
	}
}
