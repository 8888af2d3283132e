package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/detect"
	"github.com/haven-dr/haven/internal/vault"
)

// encryption is what detection found for one machine.
type encryption struct {
	holds   []*vault.Hold
	suspect map[string]bool // point IDs
}

// detectEncryption runs the detector over the machine's points (preserved
// ones left out) and records every new jump in the vault as a hold, which
// keeps its last clean point from prune. The vault is the record: a
// restarted or recovered server finds the same alerts, and an alert stays
// open after its suspect points are pruned, until an operator closes it.
func (s *Server) detectEncryption(ctx context.Context, machine string, all []*vault.Point) (*encryption, error) {
	var ps []*vault.Point
	for _, p := range all {
		if !p.Preserved() {
			ps = append(ps, p)
		}
	}
	holds, err := s.vault.Holds(ctx, machine)
	if err != nil {
		return nil, err
	}
	closed := map[string]time.Time{}
	for _, h := range holds {
		if h.Closed != nil {
			closed[h.FirstSuspect] = *h.Closed
			if h.Trigger != "" {
				closed[h.Trigger] = *h.Closed
			}
		}
	}
	for _, a := range detect.Scan(s.cfg.EncryptionDetection, ps, closed).Alerts {
		if covered(holds, a) {
			continue
		}
		h := vault.Hold{Machine: machine, Disk: a.Disk, FirstSuspect: a.FirstSuspect, Trigger: a.Trigger, SuspectTime: a.SuspectTime.UTC(),
			LastClean: a.LastClean, Detected: time.Now().UTC(), Reason: a.Reason()}
		if err := s.vault.PutHold(ctx, h); err != nil {
			return nil, err
		}
		s.log.Error("mass encryption suspected", "machine", machine, "first_suspect", a.FirstSuspect, "trigger", a.Trigger,
			"last_clean", a.LastClean, "reason", h.Reason)
		holds = append(holds, &h)
	}
	e := &encryption{holds: holds, suspect: map[string]bool{}}
	for _, p := range ps {
		for _, h := range holds {
			if !p.Time.Before(h.SuspectTime) && (h.Open() || !p.Time.After(*h.Closed)) {
				e.suspect[p.ID] = true
			}
		}
	}
	return e, nil
}

// covered reports whether a jump the detector found is one the vault
// already records: by its points, or because it lies in the suspect span of
// a recorded alert (the detector sees fewer points once some are pruned,
// and must not raise the same attack twice).
func covered(holds []*vault.Hold, a detect.Alert) bool {
	for _, h := range holds {
		if h.FirstSuspect == a.FirstSuspect || h.FirstSuspect == a.Trigger || (h.Trigger != "" && h.Trigger == a.Trigger) {
			return true
		}
		if !a.SuspectTime.Before(h.SuspectTime) && (h.Open() || !a.SuspectTime.After(*h.Closed)) {
			return true
		}
	}
	return false
}

// fill puts the machine's alerts into its status and the alert rules.
func (e *encryption) fill(ms *api.MachineStatus, am *alert.Machine, ps []*vault.Point) {
	for _, h := range e.holds {
		w := wireHold(h)
		for _, p := range ps {
			if !p.Time.Before(h.SuspectTime) && (h.Open() || !p.Time.After(*h.Closed)) {
				w.Suspect++
			}
		}
		ms.Encryption = append(ms.Encryption, w)
		if h.Open() {
			if ms.LastClean == "" {
				ms.LastClean = h.LastClean
			}
			am.Encryption = append(am.Encryption, alert.Encryption{FirstSuspect: h.FirstSuspect, LastClean: h.LastClean,
				Detected: h.Detected, Reason: h.Reason})
		}
	}
}

// closeEncryptionAlert is an operator's close: the alert stops, its last
// clean point returns to retention, and detection resumes after now.
func (s *Server) closeEncryptionAlert(r *http.Request) (any, error) {
	name, err := s.pathMachine(r)
	if err != nil {
		return nil, err
	}
	var body api.CloseAlert
	b, err := readBody(r, 64<<10)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			return nil, errStatus(http.StatusBadRequest, "body: %v", err)
		}
	}
	h, err := s.vault.CloseHold(r.Context(), name, r.PathValue("alert"), body.Note)
	if errors.Is(err, vault.ErrNoHold) {
		return nil, errStatus(http.StatusNotFound, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	s.log.Warn("encryption alert closed", "machine", name, "first_suspect", h.FirstSuspect, "note", h.Note)
	s.alerts.poke()
	return wireHold(h), nil
}

func wireHold(h *vault.Hold) api.EncryptionAlert {
	return api.EncryptionAlert{Machine: h.Machine, Disk: h.Disk, FirstSuspect: h.FirstSuspect, Trigger: h.Trigger, SuspectTime: h.SuspectTime,
		LastClean: h.LastClean, Detected: h.Detected, Reason: h.Reason, Open: h.Open(), Closed: h.Closed, Note: h.Note}
}
