package consistency

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// RunHook runs one pre/post command through /bin/sh -c with a timeout.
// Its output is returned in the error so a failing hook can be diagnosed
// from the agent's log and status.
func RunHook(ctx context.Context, command string, timeout time.Duration) error {
	if strings.TrimSpace(command) == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 500 {
			msg = msg[len(msg)-500:]
		}
		return fmt.Errorf("hook %q: %w: %s", command, err, msg)
	}
	return nil
}
