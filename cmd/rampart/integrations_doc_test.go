package main

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestIntegrationsDoc runs scripts/integrations-test, which follows
// docs/integrations.md step by step with the snippets taken out of the
// page, on its own directories and loopback ports: the page's setup must
// reach the first blinded enumerator and fail open while Rampart is down.
func TestIntegrationsDoc(t *testing.T) {
	requireMailTools(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("skipping: needs python3 (scripts/test installs it)")
	}
	bin := rampartBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "../../scripts/integrations-test", bin)
	// On timeout the script gets SIGTERM, so that its trap stops the
	// Postfix, Dovecot and Rampart it started.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("scripts/integrations-test:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/integrations-test: %v", err)
	}
	if !strings.Contains(string(out), "every step behaved as") {
		t.Fatalf("the script did not finish")
	}
}
