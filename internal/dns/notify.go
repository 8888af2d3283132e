package dns

import (
	"time"

	"github.com/miekg/dns"
)

// NOTIFY (RFC 1996) tells a secondary that a zone changed, so it asks for
// the new version at once instead of at its next SOA refresh.
const (
	notifyTries   = 5
	notifyTimeout = 2 * time.Second
)

// notifyAll tells every configured secondary of a zone's new serial, each
// in its own goroutine, retrying a secondary that does not answer.
func (v *versions) notifyAll(t *table, origin string, soa dns.RR) {
	for _, target := range t.xfr.notify {
		go v.notify(t.xfr.key, origin, soa, target)
	}
}

func (v *versions) notify(key tsigKey, origin string, soa dns.RR, target string) {
	serial := soa.(*dns.SOA).Serial
	m := new(dns.Msg)
	m.SetNotify(origin)
	m.Answer = []dns.RR{soa}
	c := &dns.Client{Timeout: notifyTimeout, TsigProvider: tsigProvider{v.s}}
	var err error
	for try := range notifyTries {
		if try > 0 {
			select {
			case <-v.stop:
				return
			case <-time.After(time.Duration(try) * time.Second):
			}
		}
		m.SetTsig(key.name, key.alg, 300, time.Now().Unix())
		var r *dns.Msg
		if r, _, err = c.Exchange(m, target); err == nil && r.Rcode == dns.RcodeSuccess {
			v.count.WithLabelValues("notify", "ok").Inc()
			return
		} else if err == nil {
			err = rcodeError(r.Rcode)
		}
		m.Extra = nil
	}
	v.count.WithLabelValues("notify", "failed").Inc()
	v.s.log.Warn("secondary did not take NOTIFY", "zone", origin, "serial", serial, "secondary", target, "err", err)
}

type rcodeError int

func (e rcodeError) Error() string { return "answered " + dns.RcodeToString[int(e)] }
