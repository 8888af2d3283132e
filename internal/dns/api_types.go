package dns

// ProfileStatus is a profile as the API reports it.
type ProfileStatus struct {
	Name      string           `json:"name"`
	Routing   string           `json:"routing"`
	TTL       uint32           `json:"ttl"` // in effect: Override's where set, else ConfigTTL
	ConfigTTL uint32           `json:"config_ttl"`
	Override  *Override        `json:"override,omitempty"` // the API's TTL
	Enabled   bool             `json:"enabled"`
	State     string           `json:"state"` // Online, Degraded, CheckingEndpoints, Inactive, Disabled
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is an endpoint as the API reports it.
type EndpointStatus struct {
	Name      string `json:"name"`
	Target    string `json:"target,omitempty"`
	Profile   string `json:"profile,omitempty"` // nested endpoints
	Enabled   bool   `json:"enabled"`
	Priority  int    `json:"priority"`
	Weight    int    `json:"weight"`
	State     string `json:"state"` // CheckingEndpoint, Online, Degraded, Disabled, Stopped, Unmonitored
	LastError string `json:"last_error,omitempty"`

	// Enabled, Priority and Weight above are in effect: Override's fields
	// where set, else Config's.
	Config   EndpointValues `json:"config"`
	Override *Override      `json:"override,omitempty"`
}

// EndpointValues are the settings the API can override, as the config file
// has them.
type EndpointValues struct {
	Enabled  bool `json:"enabled"`
	Priority int  `json:"priority"`
	Weight   int  `json:"weight"`
}

// EndpointPatch changes an endpoint at run time; nil fields stay as they are.
type EndpointPatch struct {
	Enabled  *bool `json:"enabled,omitempty"`
	Priority *int  `json:"priority,omitempty"`
	Weight   *int  `json:"weight,omitempty"`
}

// ProfilePatch changes a profile at run time; nil fields stay as they are.
type ProfilePatch struct {
	TTL *uint32 `json:"ttl,omitempty"`
}

type apiError struct {
	Error string `json:"error"`
}

// Answer is what the server would answer now to one query for a profile's
// name: one sample, so weighted and multivalue picks vary between calls.
type Answer struct {
	Name      string   `json:"name"`
	Type      string   `json:"type"`
	Client    string   `json:"client,omitempty"` // routing's client address (subnet, geographic)
	Rcode     string   `json:"rcode"`            // NOERROR, NXDOMAIN (nothing enabled), SERVFAIL
	Endpoints []string `json:"endpoints"`        // endpoints answered, nested ones resolved
	Records   []string `json:"records"`          // answer section, zone-file syntax
}
