package dns

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/haven-dr/haven/internal/atomicfile"
	"github.com/haven-dr/haven/internal/dns/health"
)

// Zone versions exist for secondaries: each change of a zone's content (a
// static record, or a profile's answer moving with health or the API) is a
// new version with a higher SOA serial, kept for IXFR and announced by
// NOTIFY. The last serial of each zone is persisted so a restart never
// serves a serial lower than one a secondary has already seen.
const (
	versionTick = 200 * time.Millisecond // how soon a change reaches secondaries
	journalLen  = 16                     // versions kept for IXFR
)

type zoneVersion struct {
	serial  uint32
	sum     string   // of the unsigned content, without the SOA
	rrs     []dns.RR // SOA first, then the rest, signed when DNSSEC is on
	refresh time.Time
}

// versions tracks the zones' versions while zone_transfer is configured.
type versions struct {
	s       *Server
	path    string // persisted serials; "" keeps them in memory
	mu      sync.Mutex
	zones   map[string][]*zoneVersion // oldest first; the last is current
	serials atomic.Pointer[map[string]uint32]
	stored  map[string]storedSerial
	count   *prometheus.CounterVec
	kick    chan struct{} // a health change: look now, not at the next tick
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started atomic.Bool
	// held are the NOTIFYs of versions made before the sockets opened (a
	// secondary told then would find nobody to ask and wait its retry).
	held map[string]dns.RR
}

type storedSerial struct {
	Serial uint32 `json:"serial"`
	Sum    string `json:"sum"`
}

func newVersions(s *Server, statePath string) (*versions, error) {
	v := &versions{s: s, zones: map[string][]*zoneVersion{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if statePath != "" {
		v.path = statePath + ".serials"
	}
	var err error
	if v.stored, err = loadSerials(v.path); err != nil {
		return nil, err
	}
	v.count = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "haven_dns", Name: "transfers_total",
		Help: "Zone transfer requests by kind (axfr, ixfr) and result (ok, refused), and NOTIFY sent (notify, ok/failed).",
	}, []string{"kind", "result"})
	s.metrics.reg.MustRegister(v.count)
	empty := map[string]uint32{}
	v.serials.Store(&empty)
	return v, nil
}

func loadSerials(path string) (map[string]storedSerial, error) {
	out := map[string]storedSerial{}
	if path == "" {
		return out, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

// start sends the held NOTIFYs and makes new versions until close; the
// server calls it once its sockets are open.
func (v *versions) start() {
	if !v.started.CompareAndSwap(false, true) {
		return
	}
	v.mu.Lock()
	held := v.held
	v.held = nil
	v.mu.Unlock()
	if t := v.s.table.Load(); t != nil && t.xfr != nil {
		for origin, soa := range held {
			v.notifyAll(t, origin, soa)
		}
	}
	go v.run()
}

func (v *versions) run() {
	defer close(v.done)
	tk := time.NewTicker(versionTick)
	defer tk.Stop()
	for {
		v.update()
		select {
		case <-v.stop:
			return
		case <-tk.C:
		case <-v.kick:
		}
	}
}

// changed is the health hook: it logs the change and has the zones looked
// at at once.
func (s *Server) changed(c *health.Checker, from, to health.State, reason string) {
	s.stateChange(c, from, to, reason)
	select {
	case s.versions.kick <- struct{}{}:
	default:
	}
}

func (v *versions) close() {
	v.once.Do(func() { close(v.stop) })
	if v.started.Load() {
		<-v.done
	}
}

// update makes a new version of every zone whose content changed (or whose
// signatures need making anew), then persists the serials and notifies.
func (v *versions) update() {
	t := v.s.table.Load()
	if t == nil || t.xfr == nil {
		return
	}
	now := time.Now()
	var changed []*zoneVersion
	var origins []string
	v.mu.Lock()
	for origin, z := range t.zones {
		nv, err := v.next(t, z, now)
		if err != nil {
			v.s.log.Error("zone version", "zone", origin, "err", err)
			continue
		}
		if nv != nil {
			changed = append(changed, nv)
			origins = append(origins, origin)
		}
	}
	if len(changed) == 0 {
		v.mu.Unlock()
		return
	}
	// Persisted before any reply carries the new serial, so a restart never
	// goes back below a serial a secondary has seen.
	err := v.persist()
	if err == nil {
		ser := map[string]uint32{}
		for o, st := range v.stored {
			ser[o] = st.Serial
		}
		v.serials.Store(&ser)
	}
	v.mu.Unlock()
	if err != nil {
		v.s.log.Error("saving zone serials; secondaries are not notified", "err", err)
		return
	}
	for i, nv := range changed {
		v.s.log.Info("zone changed", "zone", origins[i], "serial", nv.serial)
		if v.started.Load() {
			v.notifyAll(t, origins[i], nv.rrs[0])
			continue
		}
		v.mu.Lock()
		if v.held == nil {
			v.held = map[string]dns.RR{}
		}
		v.held[origins[i]] = nv.rrs[0]
		v.mu.Unlock()
	}
}

// next returns the zone's new version, or nil when it did not change; v.mu
// is held.
func (v *versions) next(t *table, z *zone, now time.Time) (*zoneVersion, error) {
	rrs := zoneRecords(t, z)
	sum := contentSum(rrs)
	hist := v.zones[z.origin]
	var cur *zoneVersion
	if len(hist) > 0 {
		cur = hist[len(hist)-1]
		if cur.sum == sum && (cur.refresh.IsZero() || now.Before(cur.refresh)) {
			return nil, nil
		}
	}
	serial := z.soa.Serial
	if cur != nil {
		serial = later(cur.serial+1, serial)
	} else if st, ok := v.stored[z.origin]; ok && st.Sum == sum {
		serial = st.Serial // a restart with nothing changed: the same version
	} else if ok {
		serial = later(st.Serial+1, serial)
	}
	soa := *z.soa
	soa.Serial = serial
	nv := &zoneVersion{serial: serial, sum: sum, rrs: append([]dns.RR{&soa}, rrs...)}
	if t.signer != nil {
		signed, err := t.signer.signZone(z.origin, &soa, rrs, now)
		if err != nil {
			return nil, err
		}
		nv.rrs, nv.refresh = signed, oldestSig(signed)
	}
	hist = append(hist, nv)
	v.zones[z.origin] = hist[max(0, len(hist)-journalLen):]
	v.stored[z.origin] = storedSerial{Serial: serial, Sum: sum}
	return nv, nil
}

// later is the later of two serials in serial-number arithmetic (RFC 1982).
func later(a, b uint32) uint32 {
	if int32(b-a) > 0 {
		return b
	}
	return a
}

func contentSum(rrs []dns.RR) string {
	h := sha256.New()
	for _, rr := range rrs {
		h.Write([]byte(rr.String()))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// persist writes the serials; v.mu is held.
func (v *versions) persist() error {
	if v.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v.stored, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(v.path, append(b, '\n'), 0o600)
}

// current returns a zone's versions, oldest first.
func (v *versions) history(origin string) []*zoneVersion {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.zones[origin]
}

// fixSerials puts the current serial into the SOA records of a reply (the
// compiled SOA keeps the config's); only while zone transfer is on.
func (v *versions) fixSerials(m *dns.Msg) {
	ser := *v.serials.Load()
	if len(ser) == 0 {
		return
	}
	fix := func(rrs []dns.RR) {
		for i, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok {
				if s, ok := ser[canonical(soa.Hdr.Name)]; ok && s != soa.Serial {
					c := *soa
					c.Serial = s
					rrs[i] = &c
				}
			}
		}
	}
	fix(m.Answer)
	fix(m.Ns)
}
