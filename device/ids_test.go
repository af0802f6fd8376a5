package device

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestIncidentIDs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "incident-counter")
	at := time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC)
	var ids []string
	for range 3 { // three boots, each pressed at the same second
		id, err := incidentIDs{path: path, loc: time.UTC}.next(at)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	later, _ := incidentIDs{path: path, loc: time.UTC}.next(at.Add(time.Hour))
	ids = append(ids, later)
	want := []string{"19700101-000042-000001", "19700101-000042-000002", "19700101-000042-000003", "19700101-010042-000004"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}
