package dns

import (
	"time"

	"github.com/haven-dr/haven/internal/dns/health"
)

// Config is the whole `haven dns` configuration file. Field names follow the
// documented YAML; every struct keeps the source lines of its fields so that
// validation errors can name the line and the field.
type Config struct {
	Listen       string     `yaml:"listen"`
	API          string     `yaml:"api"`
	APITokenFile string     `yaml:"api_token_file"` // bearer token; created (0600) if absent
	APITLSCert   string     `yaml:"api_tls_cert"`   // PEM; with api_tls_key the API speaks HTTPS
	APITLSKey    string     `yaml:"api_tls_key"`
	StateFile    string     `yaml:"state_file"` // API changes, kept across restarts
	Zones        []Zone     `yaml:"zones"`
	Profiles     []Profile  `yaml:"profiles"`
	RateLimit    *RateLimit `yaml:"rate_limit"` // omit: no response-rate limiting
	TSIGKeys     []TSIGKey  `yaml:"tsig_keys"`
	Transfer     *Transfer  `yaml:"zone_transfer"` // omit: AXFR/IXFR refused, no NOTIFY
	DNSSEC       *DNSSEC    `yaml:"dnssec"`        // omit: answers are not signed
	Cluster      *Cluster   `yaml:"cluster"`       // omit: a server on its own

	dir  string // of the file, for relative paths
	file string // the file itself, to name the default state and token files

	at pos `yaml:"-"`
}

// RateLimit is response-rate limiting (RRL) of UDP answers per client
// prefix (/24 for IPv4, /56 for IPv6), as in BIND and Knot.
type RateLimit struct {
	ResponsesPerSecond int      `yaml:"responses_per_second"` // per prefix; 0: off
	Slip               *int     `yaml:"slip"`                 // every Nth limited answer goes out truncated; 0: none
	Window             Duration `yaml:"window"`               // how long an excess is remembered

	at pos `yaml:"-"`
}

// Zone is one zone the server is authoritative for.
type Zone struct {
	Name        string   `yaml:"name"`
	TTL         uint32   `yaml:"ttl"`          // default TTL of static records
	NegativeTTL uint32   `yaml:"negative_ttl"` // SOA minimum
	NS          []string `yaml:"ns"`           // name servers; default ns1.<zone>
	Mbox        string   `yaml:"mbox"`         // SOA responsible mailbox
	Serial      uint32   `yaml:"serial"`
	Records     []Record `yaml:"records"`

	at pos `yaml:"-"`
}

// Record is a static record; Name is relative to the zone ("@" is the apex)
// unless it ends with a dot.
type Record struct {
	Name  string `yaml:"name"`
	Type  string `yaml:"type"`
	Value string `yaml:"value"`
	TTL   uint32 `yaml:"ttl"`

	at pos `yaml:"-"`
}

// Profile is a traffic-manager profile: a name whose answers follow the
// health of its endpoints.
type Profile struct {
	Name       string     `yaml:"name"`
	Routing    string     `yaml:"routing"`
	TTL        *uint32    `yaml:"ttl"`
	Enabled    *bool      `yaml:"enabled"`
	MaxAnswers int        `yaml:"max_answers"` // multivalue: how many addresses
	AllDown    string     `yaml:"all_down"`    // "fail_open" (default) or "servfail"
	GeoFile    string     `yaml:"geo_file"`    // geographic: "CIDR REGION" lines
	Monitor    *Monitor   `yaml:"monitor"`
	Endpoints  []Endpoint `yaml:"endpoints"`

	at pos `yaml:"-"`
}

// Monitor configures the health probe of every endpoint of a profile.
type Monitor struct {
	Protocol          string            `yaml:"protocol"`
	Port              int               `yaml:"port"`
	Path              string            `yaml:"path"`
	Host              string            `yaml:"host"`
	Headers           map[string]string `yaml:"headers"`
	ExpectedStatus    []string          `yaml:"expected_status"`
	Body              string            `yaml:"body"`
	TLSVerify         *bool             `yaml:"tls_verify"`
	Interval          Duration          `yaml:"interval"`
	Timeout           Duration          `yaml:"timeout"`
	ToleratedFailures int               `yaml:"tolerated_failures"`
	RequiredSuccesses int               `yaml:"required_successes"`

	at pos `yaml:"-"`
}

// Endpoint is one place a profile can send clients.
type Endpoint struct {
	Name        string   `yaml:"name"`
	Target      string   `yaml:"target"`  // IPv4, IPv6 or a host name (CNAME)
	Profile     string   `yaml:"profile"` // nested: another profile's name
	MinHealthy  int      `yaml:"min_healthy"`
	Enabled     *bool    `yaml:"enabled"`
	Priority    int      `yaml:"priority"`
	Weight      int      `yaml:"weight"`
	AlwaysServe bool     `yaml:"always_serve"`
	Subnets     []string `yaml:"subnets"`
	Regions     []string `yaml:"regions"`
	ProbeAddr   string   `yaml:"probe_address"` // probe here instead of target

	at pos `yaml:"-"`
}

// Duration accepts "500ms"/"1s" strings or a bare number of seconds.
type Duration time.Duration

// HealthSpec turns a profile's monitor into the prober's settings.
func (m *Monitor) healthSpec() health.Spec {
	return health.Spec{
		Protocol:          m.Protocol,
		Port:              m.Port,
		Path:              m.Path,
		Host:              m.Host,
		Headers:           m.Headers,
		Body:              m.Body,
		TLSVerify:         m.TLSVerify == nil || *m.TLSVerify,
		Interval:          time.Duration(m.Interval),
		Timeout:           time.Duration(m.Timeout),
		ToleratedFailures: m.ToleratedFailures,
		RequiredSuccesses: m.RequiredSuccesses,
	}
}
