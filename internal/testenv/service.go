package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// serviceStartTimeout bounds how long a server may take to open its port;
// Node-based servers on a busy 2-core machine need a few seconds.
const serviceStartTimeout = 60 * time.Second

// Ports handed out by this test binary, so two calls never give the same.
var (
	portsMu sync.Mutex
	ports   = map[int]bool{}
)

// loopbackPort returns a port free for TCP and UDP on 127.0.0.1 a moment
// ago, below the kernel's ephemeral range (32768 and up): a port from
// that range (what listening on :0 gives) can be taken by any outgoing
// connection between this check and the server's bind, and a server
// started later then fails with "address already in use" (seen with the
// DNS servers of the orchestrator's traffic tests on a busy machine).
func loopbackPort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if ports[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		ports[port] = true
		return port
	}
	t.Fatal("finding a free port: none of 1000 tried in 20000-31999 was free")
	return 0
}

// startService runs a server in its own process group with output in a log
// file, waits until 127.0.0.1:port accepts connections, and kills the whole
// group in t.Cleanup. name (prefixed "hv-") is the process's argv[0].
func startService(t testing.TB, name string, port int, prog string, args ...string) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Args[0] = "hv-" + name
	cmd.Dir = t.TempDir() // whatever the server writes beside itself goes away
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		logf.Close()
	})
	if err := waitPort(port, exited); err != nil {
		t.Fatalf("%s did not start: %v\n%s", name, err, TailFile(logPath))
	}
}

// waitPort polls until the port accepts a connection or the process exits.
func waitPort(port int, exited <-chan struct{}) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(serviceStartTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("process exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("port %d not open after %v", port, serviceStartTimeout)
}
