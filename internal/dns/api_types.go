package dns

// ProfileStatus is a profile as the API reports it.
type ProfileStatus struct {
	Name      string           `json:"name"`
	Routing   string           `json:"routing"`
	TTL       uint32           `json:"ttl"`
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
}

// EndpointPatch changes an endpoint at run time; nil fields stay as they are.
type EndpointPatch struct {
	Enabled  *bool `json:"enabled,omitempty"`
	Priority *int  `json:"priority,omitempty"`
	Weight   *int  `json:"weight,omitempty"`
}

type apiError struct {
	Error string `json:"error"`
}
