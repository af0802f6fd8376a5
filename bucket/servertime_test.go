//go:build linux

package bucket

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"mamoru/bucket/s3test"
)

// MinIO and versitygw both tell the time to an anonymous request, which
// is all a device with no NTP needs to date its locks; a server that
// does not is named in the error.
func TestServerTime(t *testing.T) {
	minio := s3test.Start(t, s3test.Options{})
	minio.Bucket("clips")
	gw := s3test.StartGateway(t)
	for name, st := range map[string]func() (time.Time, error){
		"minio":     func() (time.Time, error) { return ServerTime(t.Context(), minio.Storage("clips")) },
		"versitygw": func() (time.Time, error) { return ServerTime(t.Context(), gw.Storage("clips")) },
	} {
		before := time.Now().Add(-2 * time.Second)
		got, err := st()
		if err != nil || got.Before(before) || got.After(time.Now().Add(2*time.Second)) {
			t.Errorf("%s: ServerTime = %v, %v; want about %v", name, got, err, time.Now())
		}
	}

	mute := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Date"] = nil
		w.WriteHeader(http.StatusForbidden)
	}))
	defer mute.Close()
	st := minio.Storage("clips")
	st.Endpoint = strings.TrimPrefix(mute.URL, "http://")
	st.Secure = false
	if _, err := ServerTime(t.Context(), st); err == nil || !strings.Contains(err.Error(), st.Endpoint+" answered with no Date header") {
		t.Errorf("a server with no Date: %v", err)
	}
}
