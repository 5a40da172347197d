package redirect

import (
	"net/http"
	"testing"
)

// A client that follows redirects is caught: the check this package exists
// for can fail.
func TestTrapCatchesAFollowingClient(t *testing.T) {
	tr := New(t, http.StatusTemporaryRedirect)
	req, err := http.NewRequest(http.MethodPost, tr.URL()+"/api/v2/write?bucket=b", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token not-a-real-one")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if tr.Asked() != 1 || tr.Reached() != 1 {
		t.Fatalf("asked %d, reached %d; want 1 and 1", tr.Asked(), tr.Reached())
	}
	rec := &recorder{TB: t}
	tr.CheckNothingFollowed(rec)
	if !rec.failed {
		t.Error("CheckNothingFollowed passed a client that followed the redirect")
	}
}

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Error(...any)          { r.failed = true }
