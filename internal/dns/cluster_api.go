package dns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// StatePush is the body of POST /v1/state: overrides to merge.
type StatePush struct {
	Overrides []EndpointOverride `json:"overrides"`
}

func (s *Server) getState(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.ClusterState())
}

// postState is the control plane's re-push of the desired state to a
// server that missed changes: only newer overrides are adopted.
func (s *Server) postState(w http.ResponseWriter, r *http.Request) {
	var in StatePush
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeErr(w, fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	if _, err := s.Merge(in.Overrides); err != nil {
		writeErr(w, err) // 400 for a bad override, 500 when it could not be kept
		return
	}
	writeJSON(w, http.StatusOK, s.ClusterState())
}

// State is the server's ClusterState (GET /v1/state).
func (c *Client) State(ctx context.Context) (ClusterState, error) {
	var out ClusterState
	return out, c.do(ctx, http.MethodGet, "/v1/state", nil, &out)
}

// PushState merges overrides into the server's (POST /v1/state): each is
// adopted only when newer than the one the server holds.
func (c *Client) PushState(ctx context.Context, ov []EndpointOverride) (ClusterState, error) {
	var out ClusterState
	return out, c.do(ctx, http.MethodPost, "/v1/state", StatePush{Overrides: ov}, &out)
}
