// Command guest is the init of Haven's test images: a static binary run as
// PID 1 by both machine drivers. It serves HTTP on :80 ("/" answers the
// hostname, "/fetch?addr=" relays a GET made from inside the machine, "/write" writes a file and syncs, "/read" reads one back, "/ignore-shutdown" makes it
// ignore graceful shutdown, for the kill-after-timeout test, "/eat?mb="
// runs a child that fills that much memory, for the memory limit test) and powers off
// on SIGTERM, SIGINT, SIGPWR or an ACPI power-button press.
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

var ignoreShutdown atomic.Bool

func main() {
	log.SetFlags(0)
	log.SetPrefix("guest: ")
	if len(os.Args) == 3 && os.Args[1] == "eat" {
		eat(os.Args[2])
		return
	}
	if os.Getpid() == 1 {
		mountBasics()
	}
	shutdown := make(chan string, 4)
	go watchSignals(shutdown)
	go watchPowerButtons(shutdown)
	go serve()
	for reason := range shutdown {
		if ignoreShutdown.Load() {
			log.Printf("ignoring shutdown (%s)", reason)
			continue
		}
		log.Printf("shutting down (%s)", reason)
		powerOff()
	}
}

func mountBasics() {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		unix.Mount(m.src, m.dst, m.fs, 0, "") // /dev may already be a tmpfs: fine
	}
}

func serve() {
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	mux.HandleFunc("POST /write", writeFile)
	mux.HandleFunc("GET /read", readFile)
	mux.HandleFunc("GET /fetch", fetch)
	mux.HandleFunc("POST /ignore-shutdown", func(w http.ResponseWriter, r *http.Request) {
		ignoreShutdown.Store(true)
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /eat", eatHandler)
	log.Printf("serving HTTP on :80 as %s", host)
	log.Fatal(http.ListenAndServe(":80", mux))
}

// fetch GETs http://?addr=/ from inside the machine and relays the answer,
// so tests can check what one machine reaches.
func fetch(w http.ResponseWriter, r *http.Request) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.URL.Query().Get("addr") + "/")
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	io.Copy(w, resp.Body)
}

// writeFile writes the request body to ?path= and syncs it to the disk.
func writeFile(w http.ResponseWriter, r *http.Request) {
	path := filepath.Clean("/" + r.URL.Query().Get("path"))
	f, err := os.Create(path)
	if err == nil {
		_, err = f.ReadFrom(r.Body)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}

// readFile answers the content of ?path= (what a machine has on its disk).
func readFile(w http.ResponseWriter, r *http.Request) {
	b, err := os.ReadFile(filepath.Clean("/" + r.URL.Query().Get("path")))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Write(b)
}

func watchSignals(out chan<- string) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR)
	for s := range c {
		out <- s.String()
	}
}

// watchPowerButtons reads key events from every input device; the ACPI
// button driver reports the power button (QMP system_powerdown) as
// KEY_POWER.
func watchPowerButtons(out chan<- string) {
	devs, _ := filepath.Glob("/dev/input/event*")
	for _, d := range devs {
		go func() {
			f, err := os.Open(d)
			if err != nil {
				return
			}
			defer f.Close()
			var ev struct {
				Sec, Usec  int64
				Type, Code uint16
				Value      int32
			}
			for binary.Read(f, binary.LittleEndian, &ev) == nil {
				if ev.Type == 1 && ev.Code == 116 && ev.Value == 1 {
					out <- "power button"
				}
			}
		}()
	}
}

func powerOff() {
	unix.Sync()
	if os.Getpid() != 1 {
		os.Exit(0)
	}
	// Leave the root file system clean: a VM's kernel will not unmount it
	// for us before powering off.
	unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
	unix.Sync()
	// In a PID namespace this ends the namespace's init; in a VM it powers
	// the machine off and QEMU exits.
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	os.Exit(0)
}

// eatHandler runs "init eat MB" as a child and answers how it ended: a
// machine over its memory limit has the child killed, not the machine.
func eatHandler(w http.ResponseWriter, r *http.Request) {
	cmd := exec.Command("/proc/self/exe", "eat", r.URL.Query().Get("mb"))
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(w, "killed by %s\n", ws.Signal())
		return
	}
	fmt.Fprintf(w, "exited: %v %s\n", err, out)
}

// eat touches mb MiB of anonymous memory, page by page, and reports.
func eat(mb string) {
	var n int
	fmt.Sscan(mb, &n)
	buf, err := unix.Mmap(-1, 0, n<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	fmt.Printf("ate %d MiB\n", n)
}
