package server

import (
	"net/http"
	"time"

	"github.com/haven-dr/haven/internal/api"
)

// slaReport answers a plan's monthly report: ?month=YYYY-MM (default the
// current month, UTC) and ?format=json (default) or csv.
func (s *Server) slaReport(w http.ResponseWriter, r *http.Request) {
	rep, err := s.sla(r)
	if err != nil {
		writeError(w, err)
		return
	}
	switch r.URL.Query().Get("format") {
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="haven-`+rep.Plan+`-`+rep.Month+`.csv"`)
		rep.WriteCSV(w)
	default:
		writeError(w, errStatus(http.StatusBadRequest, "format %q: want json or csv", r.URL.Query().Get("format")))
	}
}

func (s *Server) sla(r *http.Request) (*api.SLAReport, error) {
	now := time.Now().UTC()
	month := r.URL.Query().Get("month")
	if month == "" {
		month = now.Format("2006-01")
	}
	rep, err := s.orch.SLA(r.Context(), r.PathValue("plan"), month, now)
	if err != nil {
		return nil, err
	}
	out, err := wire[api.SLAReport](rep)
	return &out, err
}
