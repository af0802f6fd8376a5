package console

import (
	"encoding/json"
	"net/http"
)

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError answers with {"error": ...}.
func apiError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

// IncidentList is GET /api/incidents: a page of the inbox.
type IncidentList struct {
	Total     int          `json:"total"`
	Page      int          `json:"page"`
	Pages     int          `json:"pages"`
	Stores    []StoreCount `json:"stores"`
	Incidents []Row        `json:"incidents"`
}

// apiIncidents is GET /api/incidents?store=&device=&since=&until=&unreviewed=&page=:
// the inbox's rows as JSON. An incident not verified yet has state
// "checking"; asking again shows the result.
func (s *Server) apiIncidents(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err)
		return
	}
	snap, err := s.index.Get(r.Context())
	if err != nil {
		apiError(w, http.StatusBadGateway, err)
		return
	}
	items := q.filter(snap)
	from := min(len(items), (q.Page-1)*s.o.PageSize)
	to := min(len(items), from+s.o.PageSize)
	l := IncidentList{Total: len(items), Page: q.Page, Pages: max(1, (len(items)+s.o.PageSize-1)/s.o.PageSize), Stores: counts(snap)}
	l.Incidents = s.rows(r.Context(), texts[langOf(w, r)], snap, items[from:to])
	writeJSON(w, http.StatusOK, l)
}

// apiIncident is GET /api/incidents/{store}/{device}/{id}: one incident
// with its verification, checked now if it has not been. It records no
// view: the page does.
func (s *Server) apiIncident(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	it, _, err := s.find(ctx, r)
	if err != nil {
		apiError(w, statusOf(err), err)
		return
	}
	snap, err := s.index.Get(ctx)
	if err != nil {
		apiError(w, http.StatusBadGateway, err)
		return
	}
	v := s.verifier.check(ctx, it)
	t := texts[langOf(w, r)]
	row := s.rows(ctx, t, snap, []Item{it})[0]
	row.State, row.StateText, row.Check = v.State, stateText(t, v.State), &v
	writeJSON(w, http.StatusOK, row)
}

// apiDevices is GET /api/devices: the fleet from the devices' health
// reports.
func (s *Server) apiDevices(w http.ResponseWriter, r *http.Request) {
	rows, err := s.deviceRows(r.Context())
	if err != nil {
		apiError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": rows})
}
