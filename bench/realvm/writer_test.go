package realvm

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/haven-dr/haven/internal/qmp"
)

// writerScript runs inside the guest (perl-base is in every Debian): 1 MiB
// blocks of fresh random data at random 1 MiB-aligned places of the data
// disk, each durable before the next (O_DSYNC: the guest's page cache
// does not hold them back), paced so that t seconds in, t×rate bytes are
// written, for a fixed time; it prints how many blocks it wrote and in
// how many seconds. A shell
// loop of dd cannot keep the pace under TCG (a process costs ~0.1 s), and
// perl cannot give O_DIRECT the aligned buffer it needs.
// Arguments: device, bytes per second, seconds.
const writerScript = `
use strict; use Fcntl; use Time::HiRes qw(time sleep);
my ($dev, $rate, $secs) = @ARGV;
sysopen(my $d, $dev, O_WRONLY | O_DSYNC) or die "open $dev: $!\n";
my $blocks = int(sysseek($d, 0, 2) / 1048576);
open(my $r, "<:raw", "/dev/urandom") or die "urandom: $!\n";
my ($start, $n) = (time, 0);
while (1) {
	my $now = time;
	last if $now - $start >= $secs;
	my $due = $start + $n * 1048576 / $rate;
	if ($now < $due) { sleep($due - $now); next }
	sysread($r, my $buf, 1048576) == 1048576 or die "urandom: $!\n";
	sysseek($d, int(rand($blocks)) * 1048576, 0) or die "seek: $!\n";
	syswrite($d, $buf) == 1048576 or die "write: $!\n";
	$n++;
}
printf "%d %.3f\n", $n, time - $start;
`

// guestWriter is a writer started in the guest with guest-exec.
type guestWriter struct {
	qga string
	pid int
}

// startWriter starts the writer for d at rate bytes per second. The
// connection to the guest agent is closed at once: the agent under test
// connects to the same socket every cycle to freeze the guest.
func startWriter(b *testing.B, vm *benchVM, rate int64, d time.Duration) *guestWriter {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := qmp.DialGuest(ctx, vm.qga)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var started struct {
		PID int `json:"pid"`
	}
	args := map[string]any{"path": "/usr/bin/perl", "capture-output": true,
		"arg": []string{"-e", writerScript, "/dev/disk/by-id/virtio-" + dataDevice, fmt.Sprint(rate), fmt.Sprint(int(d.Seconds()))}}
	if err := c.Execute(ctx, "guest-exec", args, &started); err != nil {
		b.Fatal(err)
	}
	return &guestWriter{qga: vm.qga, pid: started.PID}
}

// wait waits for the writer to end and returns how many bytes it says it
// wrote and in how many seconds; a failed writer fails the benchmark with
// its output.
func (w *guestWriter) wait(b *testing.B, timeout time.Duration) (int64, float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := qmp.DialGuest(ctx, w.qga)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for {
		var st struct {
			Exited   bool   `json:"exited"`
			ExitCode int    `json:"exitcode"`
			Out      string `json:"out-data"`
			Err      string `json:"err-data"`
		}
		if err := c.Execute(ctx, "guest-exec-status", map[string]int{"pid": w.pid}, &st); err != nil {
			b.Fatal(err)
		}
		if st.Exited {
			out, _ := base64.StdEncoding.DecodeString(st.Out)
			errOut, _ := base64.StdEncoding.DecodeString(st.Err)
			var n int64
			var sec float64
			if _, err := fmt.Sscan(string(out), &n, &sec); st.ExitCode != 0 || err != nil {
				b.Fatalf("guest writer: exit %d, out %q, err %q", st.ExitCode, out, errOut)
			}
			return n << 20, sec
		}
		select {
		case <-ctx.Done():
			b.Fatalf("guest writer still running after %v", timeout)
		case <-time.After(time.Second):
		}
	}
}
