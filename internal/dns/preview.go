package dns

import (
	"fmt"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// Answer runs the query path for a profile's name without the network, so
// the orchestrator can check what clients get after a change. qtype defaults
// to A; client ("" for none) is the address subnet and geographic routing see.
func (s *Server) Answer(profile, qtype, client string) (Answer, error) {
	t := s.table.Load()
	p := t.profile(profile)
	if p == nil {
		return Answer{}, fmt.Errorf("profile %q: %w", profile, ErrNotFound)
	}
	qtype = strings.ToUpper(orDefault(qtype, "A"))
	qt, ok := mdns.StringToType[qtype]
	if !ok {
		return Answer{}, fmt.Errorf("%w: %q is not a DNS type", ErrBadRequest, qtype)
	}
	var remote netip.Addr
	if client != "" {
		a, err := netip.ParseAddr(client)
		if err != nil {
			return Answer{}, fmt.Errorf("%w: client: %w", ErrBadRequest, err)
		}
		remote = a.Unmap()
	}
	q := new(mdns.Msg)
	q.SetQuestion(p.name, qt)
	rs := respond(t, q, remote)
	a := Answer{Name: p.name, Type: qtype, Client: client, Rcode: mdns.RcodeToString[rs.m.Rcode],
		Endpoints: []string{}, Records: []string{}}
	for _, e := range rs.eps {
		a.Endpoints = append(a.Endpoints, e.name)
	}
	for _, rr := range rs.m.Answer {
		a.Records = append(a.Records, rr.String())
	}
	return a, nil
}
