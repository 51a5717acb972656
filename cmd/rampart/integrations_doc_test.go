package main

import (
	"context"
	"os/exec"
	"strings"
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
	out, err := exec.CommandContext(ctx, "sh", "../../scripts/integrations-test", bin).CombinedOutput()
	t.Logf("scripts/integrations-test:\n%s", out)
	if err != nil {
		t.Fatalf("scripts/integrations-test: %v", err)
	}
	if !strings.Contains(string(out), "every step behaved as") {
		t.Fatalf("the script did not finish")
	}
}
